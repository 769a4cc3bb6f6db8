import { Metadata } from '@grpc/grpc-js';
import { FailedPreconditionError, InvalidArgumentError, UnavailableError, vectorFromWire } from '@yoco/common';
import { errorCodeOf, isServiceError, loadProtos, makeClient, Status, unary, type ClientTls, type v1 } from '@yoco/rpc';

/** An embedded image: its vector, and with a face profile the face it describes. */
export interface Embedded {
  vector: Float32Array;
  face: v1.Face__Output | null;
}

/** The coordinator's side of Embedder: images to vectors, with the caller's deadline. */
export class EmbedderClient {
  private readonly client: v1.EmbedderClient;

  constructor(readonly address: string, private readonly maxImageBytes: number, tls?: ClientTls, tlsName?: string) {
    this.client = makeClient(loadProtos().Embedder, address, tlsName ? { 'grpc.ssl_target_name_override': tlsName } : {}, { tls });
  }

  async info(deadline = Date.now() + 5000): Promise<v1.EmbedderInfoResponse__Output> {
    return unary(this.client, 'Info', {}, { deadline });
  }

  /** `labels` name the probes in errors ("probe 2: ...") when a request carries several. */
  async embed(images: Buffer[], deadline: number, labels?: number[], traceparent = ''): Promise<Embedded[]> {
    images.forEach((img, i) => {
      const where = labels ? `probe ${labels[i]}: ` : '';
      if (img.length === 0) throw new InvalidArgumentError(`${where}image is empty (0 bytes)`, 'IMAGE');
      if (img.length > this.maxImageBytes) throw new InvalidArgumentError(`${where}image is ${img.length} bytes, over the ${this.maxImageBytes}-byte limit`, 'IMAGE');
    });
    try {
      const metadata = new Metadata();
      if (traceparent) metadata.set('traceparent', traceparent);
      const res = await unary(this.client, 'Embed', { images }, { deadline, metadata });
      // Not validated here: the probe reader checks what comes back, as it checks a caller's vector.
      return res.embeddings.map((e) => ({ vector: vectorFromWire(e.f32le, e.values, 'embedding'), face: e.face }));
    } catch (err) {
      if (isServiceError(err) && (err.code === Status.INVALID_ARGUMENT || err.code === Status.FAILED_PRECONDITION)) {
        // The embedder names images by their place in its call; say which probe that was.
        const m = /^image (\d+): (.*)$/s.exec(err.details);
        const details = m && labels ? `probe ${labels[Number(m[1])]}: ${m[2]}` : err.details;
        // FAILED_PRECONDITION: the image decoded but shows no usable face (NO_FACE, FACE_SELECT).
        if (err.code === Status.FAILED_PRECONDITION) throw new FailedPreconditionError(details, errorCodeOf(err) || 'NO_FACE');
        throw new InvalidArgumentError(details, 'IMAGE');
      }
      if (isServiceError(err) && (err.code === Status.UNAVAILABLE || err.code === Status.DEADLINE_EXCEEDED)) {
        throw new UnavailableError(`embedder at ${this.address} unavailable: ${err.details}`);
      }
      throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}
