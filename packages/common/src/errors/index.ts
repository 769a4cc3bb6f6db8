export { YocoError } from './yoco-error.js';
export { VectorLengthError, NonFiniteVectorError } from './invalid-vector-error.js';
