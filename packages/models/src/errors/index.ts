export { ImageError } from './image-error.js';
