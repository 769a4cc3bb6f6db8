import { YocoError } from '@yoco/common';

/** Bytes that are not an ONNX model, or a model using a feature we cannot read. */
export class OnnxDecodeError extends YocoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ONNX_DECODE', message, options);
  }
}
