import { ResourceExhaustedError } from '@yoco/common';

/** More rows than a scorer can hold (the wasm32 memory ceiling, or a configured limit); nothing was added. */
export class CapacityError extends ResourceExhaustedError {
  constructor(readonly capacity: number, have: number, adding: number) {
    super(`the scorer holds at most ${capacity} rows; it has ${have} and was given ${adding} more`, 'CAPACITY');
  }
}
