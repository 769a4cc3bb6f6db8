import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, UnavailableError } from '@yoco/common';
import { isServiceError, loadProtos, makeClient, Status, unary } from '@yoco/rpc';

/** The coordinator's side of Embedder: images to vectors, with the caller's deadline. */
export class EmbedderClient {
  private readonly client: grpc.Client;

  constructor(readonly address: string, private readonly maxImageBytes: number) {
    this.client = makeClient(loadProtos().Embedder, address);
  }

  async info(deadline = Date.now() + 5000): Promise<{ modelId: string; dim: number; profile: string }> {
    return unary(this.client, 'Info', {}, { deadline });
  }

  /** `labels` name the probes in errors ("probe 2: ...") when a request carries several. */
  async embed(images: Buffer[], deadline: number, labels?: number[]): Promise<Float32Array[]> {
    images.forEach((img, i) => {
      const where = labels ? `probe ${labels[i]}: ` : '';
      if (img.length === 0) throw new InvalidArgumentError(`${where}image is empty (0 bytes)`, 'IMAGE');
      if (img.length > this.maxImageBytes) throw new InvalidArgumentError(`${where}image is ${img.length} bytes, over the ${this.maxImageBytes}-byte limit`, 'IMAGE');
    });
    try {
      const res = await unary<object, { embeddings: { values: number[] }[] }>(this.client, 'Embed', { images }, { deadline });
      return res.embeddings.map((e) => Float32Array.from(e.values));
    } catch (err) {
      if (isServiceError(err) && err.code === Status.INVALID_ARGUMENT) {
        // The embedder names images by their place in its call; say which probe that was.
        const m = /^image (\d+): (.*)$/s.exec(err.details);
        throw new InvalidArgumentError(m && labels ? `probe ${labels[Number(m[1])]}: ${m[2]}` : err.details, 'IMAGE');
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
