/** Growable row-major matrix of float32 rows, for engines that keep the raw gallery vectors. */
export class RowStore {
  private data: Float32Array;
  private count = 0;

  constructor(readonly width: number, capacity = 1024) {
    this.data = new Float32Array(width * capacity);
  }

  get rows(): number {
    return this.count;
  }

  /** A Float32Array holds at most 2^32 - 1 elements (V8 allows fewer still past 2^31 bytes on some builds): stay under 2^31 elements. */
  get maxRows(): number {
    return Math.floor(2 ** 31 / this.width);
  }

  append(rows: Float32Array, n: number): number {
    const first = this.count;
    const need = (first + n) * this.width;
    if (need > this.data.length) {
      const grown = new Float32Array(Math.max(need, this.data.length * 2));
      grown.set(this.data.subarray(0, first * this.width));
      this.data = grown;
    }
    this.data.set(rows.subarray(0, n * this.width), first * this.width);
    this.count += n;
    return first;
  }

  row(i: number): Float32Array {
    return this.data.subarray(i * this.width, (i + 1) * this.width);
  }

  clear(i: number): void {
    this.row(i).fill(0);
  }
}
