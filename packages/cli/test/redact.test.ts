import { describe, expect, it } from 'vitest';
import { parseSince, redactUrl } from '@yoco/cli';

describe('what the CLI may print', () => {
  it('a Redis URL without its password', () => {
    expect(redactUrl('redis://:s3cret@10.0.0.5:6379/0')).toBe('redis://:***@10.0.0.5:6379/0');
    expect(redactUrl('rediss://app:s3cret@redis.example:6380')).toBe('rediss://app:***@redis.example:6380');
    expect(redactUrl('redis://127.0.0.1:6390')).toBe('redis://127.0.0.1:6390');
    expect(redactUrl('not a url s3cret')).not.toContain('s3cret');
  });

  it('audit --since: durations back from now, epoch ms, ISO dates', () => {
    const now = Date.UTC(2026, 11, 1, 12);
    expect(parseSince('24h', now)).toBe(now - 86_400_000);
    expect(parseSince('30m', now)).toBe(now - 1_800_000);
    expect(parseSince('1700000000000', now)).toBe(1_700_000_000_000);
    expect(parseSince('2026-12-01T00:00:00Z', now)).toBe(Date.UTC(2026, 11, 1));
    expect(() => parseSince('yesterday', now)).toThrow(/not a time/);
  });
});
