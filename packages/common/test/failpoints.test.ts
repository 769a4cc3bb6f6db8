import { checkFailpoints, failpoint, failpointMs } from '@yoco/common';
import { afterEach, describe, expect, it } from 'vitest';

afterEach(() => checkFailpoints({}));

describe('fault points', () => {
  it('are off unless YOCO_FAILPOINTS names them, and carry their values when it does', () => {
    checkFailpoints({});
    expect(failpoint('enroller.crash-after-apply')).toBeUndefined();
    expect(failpointMs('shard.search-delay-ms')).toBe(0);
    checkFailpoints({ YOCO_FAILPOINTS: 'shard.search-delay-ms=1500, enroller.crash-after-apply=crash-me' });
    expect(failpointMs('shard.search-delay-ms')).toBe(1500);
    expect(failpoint('enroller.crash-after-apply')).toBe('crash-me');
    expect(failpoint('shard.load-delay-ms')).toBeUndefined();
  });

  it('a misspelt point or a bad value stops the process at start, naming the variable', () => {
    expect(() => checkFailpoints({ YOCO_FAILPOINTS: 'shard.serch-delay-ms=10' })).toThrow(/YOCO_FAILPOINTS: unknown fault point 'shard.serch-delay-ms'/);
    expect(() => checkFailpoints({ YOCO_FAILPOINTS: 'shard.load-delay-ms=soon' })).toThrow(/YOCO_FAILPOINTS: shard.load-delay-ms takes a whole number/);
  });
});
