/**
 * The longest any call waits, whatever deadline it carries. Node's timers
 * overflow past 2^31-1 ms (they then fire at once), and no call of ours
 * (an Identify, an Enrol waiting for its job) is worth holding open longer.
 */
export const MAX_CALL_TIMEOUT_MS = 600_000;

/** A caller's timeout within [0, MAX_CALL_TIMEOUT_MS] (NaN counts as 0). */
export function clampTimeout(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(ms, MAX_CALL_TIMEOUT_MS);
}

/** Milliseconds left until a gRPC-style deadline (a Date, epoch ms, or Infinity for none). */
export function msUntil(deadline: Date | number): number {
  const t = deadline instanceof Date ? deadline.getTime() : deadline;
  return t === Infinity ? Infinity : t - Date.now();
}

/** Epoch ms of a deadline: the caller's, never further than MAX_CALL_TIMEOUT_MS away; `fallbackMs` when it set none. */
export function deadlineFrom(deadline: Date | number | undefined, fallbackMs: number): number {
  const left = deadline === undefined ? Infinity : msUntil(deadline);
  return Date.now() + (Number.isFinite(left) ? clampTimeout(left) : clampTimeout(fallbackMs));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, clampTimeout(ms));
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
