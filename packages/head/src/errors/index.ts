export { HeadFormatError } from './head-format-error.js';
export { RowIndexError } from './row-index-error.js';
