export { ImageError } from './image-error.js';
export { FaceError } from './face-error.js';
