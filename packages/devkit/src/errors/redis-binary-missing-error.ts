import { YocoError } from '@yoco/common';

export class RedisBinaryMissingError extends YocoError {
  constructor(binary: string) {
    super(
      'REDIS_MISSING',
      `'${binary}' was not found. Install Redis (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL to a running Redis.`,
    );
  }
}
