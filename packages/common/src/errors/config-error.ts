import { YocoError } from './yoco-error.js';

/** A configuration value that cannot be used; names the variable so the operator can fix it. */
export class ConfigError extends YocoError {
  constructor(readonly variable: string, message: string) {
    super('CONFIG', `${variable}: ${message}`);
  }
}
