/**
 * Base of every error YOCO raises on purpose. `code` is a stable string that
 * callers (and the gRPC status mapping) switch on; the message is for humans.
 */
export class YocoError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
