/** A set too small for the rate asked: the report says so rather than print a number. */
export class NotMeasurableError extends Error {
  readonly code = 'NOT_MEASURABLE';
  constructor(message: string) {
    super(message);
    this.name = 'NotMeasurableError';
  }
}
