import { YocoError } from '@yoco/common';

/** A row index that was never added, or whose row was already removed. */
export class RowIndexError extends YocoError {
  readonly index: number;

  constructor(index: number, reason: string) {
    super('ROW_INDEX', `row ${index} ${reason}`);
    this.index = index;
  }
}
