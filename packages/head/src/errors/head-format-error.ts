import { YocoError } from '@yoco/common';

/**
 * An ONNX model that is not a Siamese head we can compile: the message names
 * the offending node (or input) so the exporter can be fixed.
 */
export class HeadFormatError extends YocoError {
  readonly node: string | undefined;

  constructor(message: string, node?: string) {
    super('HEAD_FORMAT', node === undefined ? message : `${message} (at ${node})`);
    this.node = node;
  }
}
