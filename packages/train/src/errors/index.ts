/** Labelled data that cannot train a head (too few subjects, no pairs, another width). */
export class TrainingDataError extends Error {
  readonly code = 'TRAINING_DATA';
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDataError';
  }
}
