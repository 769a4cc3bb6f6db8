export { MatcherError } from './matcher-error.js';
