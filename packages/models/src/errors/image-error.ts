import { InvalidArgumentError } from '@yoco/common';

/** An image we refuse; the message says why (code IMAGE, an INVALID_ARGUMENT). */
export class ImageError extends InvalidArgumentError {
  constructor(message: string) {
    super(message, 'IMAGE');
  }
}
