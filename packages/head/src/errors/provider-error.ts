import { FailedPreconditionError } from '@yoco/common';

/** ONNX Runtime does not run on the execution provider that was asked for (it cannot load it, or placed the graph elsewhere). */
export class ProviderError extends FailedPreconditionError {
  constructor(message: string) {
    super(message, 'EXECUTION_PROVIDER');
  }
}
