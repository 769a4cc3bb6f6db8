import { rewriteModel } from '@yoco/onnx';
import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { BaseScorer, type BaseScorerOptions } from './base-scorer.js';
import type { Head } from './head.js';
import { createSession, SharedSessions, type RuntimeOptions } from './ort-session.js';
import { RowStore } from './row-store.js';

export interface YocoOptions extends RuntimeOptions, BaseScorerOptions {
  /** Gallery rows per conv pass; Infinity = the whole gallery in one pass (the reference's fig. 7). */
  blockSize?: number;
}

interface Block {
  /** The head's input for this block: query channels (refilled per query) and gallery channels. */
  buf: Float32Array;
  rows: number;
  stale: boolean;
}

/**
 * The reference's YOCO method: tile the query, concatenate it with a block of
 * gallery rows along channels, and run the ONNX head over the block in one
 * pass. The gallery half of each block is laid out once and kept; only the
 * query half is written per query.
 */
export class YocoScorer extends BaseScorer {
  readonly engine = 'yoco' as const;
  private readonly rows: RowStore;
  private readonly blocks: Block[] = [];
  private readonly blockSize: number;

  private constructor(head: Head, private readonly shared: SharedSessions<{ head: InferenceSession }>, blockSize: number, base: BaseScorerOptions) {
    super(head, base);
    this.rows = new RowStore(head.dim);
    this.blockSize = blockSize;
  }

  private get session(): InferenceSession {
    return this.shared.sessions.head;
  }

  static async create(head: Head, options: YocoOptions = {}): Promise<YocoScorer> {
    const blockSize = options.blockSize ?? 4096;
    if (!(blockSize >= 1) || (blockSize !== Infinity && !Number.isInteger(blockSize))) {
      throw new RangeError(`blockSize must be a positive integer or Infinity, got ${blockSize}`);
    }
    const { inputName, inputRank, logitName } = head.graph;
    // Fetch C2's output directly: ranking on logits stays exact where sigmoid saturates to 1.
    const nAxis = head.form === 'conv' ? 2 : inputRank - 2;
    const bytes = rewriteModel(head.bytes, { outputs: [logitName], inputDims: { [inputName]: { [nAxis]: 'n' } } });
    const session = await createSession(bytes, options);
    return new YocoScorer(head, new SharedSessions({ head: session }), blockSize, { maxRows: options.maxRows, onFault: options.onFault });
  }

  protected engineCapacity(): number {
    return this.rows.maxRows;
  }

  protected cloneWith(rows: number[]): YocoScorer {
    const next = new YocoScorer(this.head, this.shared.retain(), this.blockSize, this.base);
    for (const r of rows) next.rows.append(this.rows.row(r), 1);
    return next;
  }

  protected appendRows(rows: Float32Array, n: number, first: number): void {
    this.rows.append(rows, n);
    const firstBlock = this.blockSize === Infinity ? 0 : Math.floor(first / this.blockSize);
    for (let b = firstBlock; b < this.blocks.length; b++) this.blocks[b].stale = true;
  }

  protected clearRow(index: number): void {
    this.rows.clear(index);
    const b = this.blockSize === Infinity ? 0 : Math.floor(index / this.blockSize);
    if (this.blocks[b]) this.blocks[b].stale = true;
  }

  protected async computeLogits(query: Float32Array, count: number): Promise<Float32Array> {
    const out = new Float32Array(count);
    const size = Math.min(this.blockSize, count);
    const D = this.head.dim;
    const { inputName, inputRank, logitName } = this.head.graph;
    for (let b = 0, start = 0; start < count; b++, start += size) {
      const n = Math.min(size, count - start);
      const block = this.block(b, start, n);
      const buf = block.buf;
      let dims: number[];
      if (this.head.form === 'conv') {
        for (let c = 0; c < D; c++) buf.fill(query[c], c * n, (c + 1) * n);
        dims = [1, 2 * D, n];
      } else {
        for (let i = 0; i < n; i++) buf.set(query, i * 2 * D);
        dims = inputRank === 2 ? [n, 2 * D] : [1, n, 2 * D];
      }
      const result = await this.session.run({ [inputName]: new Tensor('float32', buf, dims) }, [logitName]);
      out.set(result[logitName].data as Float32Array, start);
    }
    return out;
  }

  private block(b: number, start: number, n: number): Block {
    const existing = this.blocks[b];
    if (existing && !existing.stale && existing.rows === n) return existing;
    const D = this.head.dim;
    const buf = existing && existing.buf.length === 2 * D * n ? existing.buf : new Float32Array(2 * D * n);
    for (let i = 0; i < n; i++) {
      const g = this.rows.row(start + i);
      if (this.head.form === 'conv') {
        for (let c = 0; c < D; c++) buf[(D + c) * n + i] = g[c];
      } else {
        buf.set(g, i * 2 * D + D);
      }
    }
    const block = { buf, rows: n, stale: false };
    this.blocks[b] = block;
    return block;
  }

  protected override async release(): Promise<void> {
    this.blocks.length = 0;
    await this.shared.release();
  }
}
