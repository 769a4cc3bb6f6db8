export { HeadFormatError } from './head-format-error.js';
export { RowIndexError } from './row-index-error.js';
export { CapacityError } from './capacity-error.js';
export { ProviderError } from './provider-error.js';
