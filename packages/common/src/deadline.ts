/** Milliseconds left until a gRPC-style deadline (a Date, epoch ms, or Infinity for none). */
export function msUntil(deadline: Date | number): number {
  const t = deadline instanceof Date ? deadline.getTime() : deadline;
  return t === Infinity ? Infinity : t - Date.now();
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
