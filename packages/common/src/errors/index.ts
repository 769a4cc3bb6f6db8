export { YocoError } from './yoco-error.js';
export { VectorLengthError, NonFiniteVectorError } from './invalid-vector-error.js';
export { ConfigError } from './config-error.js';
export { InvalidArgumentError, UnavailableError, DeadlineError, NotImplementedError, NotFoundError } from './status-errors.js';
