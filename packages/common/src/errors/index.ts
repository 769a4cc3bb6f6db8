export { YocoError } from './yoco-error.js';
export { VectorLengthError, NonFiniteVectorError, VectorRangeError } from './invalid-vector-error.js';
export { ConfigError } from './config-error.js';
export {
  InvalidArgumentError,
  UnavailableError,
  DeadlineError,
  NotImplementedError,
  NotFoundError,
  ResourceExhaustedError,
  CancelledError,
  FailedPreconditionError,
  AbortedError,
  OutOfRangeError,
  UnauthenticatedError,
  PermissionDeniedError,
  AlreadyExistsError,
} from './status-errors.js';
export { getErrorMessage } from './error-message.js';
