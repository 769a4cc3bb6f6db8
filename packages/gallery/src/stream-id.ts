/** Redis stream ids ("ms-seq") compared as the pair of integers they are. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

export function isStreamId(s: string): boolean {
  return STREAM_ID.test(s);
}

export const STREAM_START = '0-0';
