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

/** What a call that sets no deadline gets, unless its service has a configured default (the Matcher's DEFAULT_TIMEOUT_MS). */
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

/**
 * The one deadline helper. Epoch ms of a call's deadline: the caller's
 * (a Date, epoch ms; undefined or Infinity for none), never further than
 * MAX_CALL_TIMEOUT_MS away; `fallbackMs` from now when it set none.
 */
export function deadlineFrom(deadline: Date | number | undefined, fallbackMs = DEFAULT_CALL_TIMEOUT_MS): number {
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
