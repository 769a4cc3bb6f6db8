export { WrongShardError } from './wrong-shard-error.js';
