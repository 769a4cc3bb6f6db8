export { Matcher, IdentifyStream, type MatcherOptions } from './matcher.js';
export { MatcherError } from './errors/index.js';
export type { v1 } from '@yoco/rpc';
