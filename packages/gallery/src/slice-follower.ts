import { DeadlineError, InvalidArgumentError } from '@yoco/common';
import type { Redis } from 'ioredis';
import type { GallerySlice } from './gallery-slice.js';
import { GalleryStore, type Change } from './gallery-store.js';
import { compareStreamIds, isStreamId, STREAM_START } from './stream-id.js';

export interface SliceFollowerOptions {
  store: GalleryStore;
  slice: GallerySlice;
  /** The slots this shard owns. */
  slots: number[];
  /** A connection of its own: XREAD BLOCK holds it. */
  blockingClient: Redis;
  /** How long one XREAD waits for news (ms); default 1000. */
  blockMs?: number;
  /** Called on every notable event (reload, Redis error) for logging. */
  onEvent?: (event: string, detail: Record<string, unknown>) => void;
}

interface Waiter {
  token: string;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export type SliceState = 'idle' | 'loading' | 'serving' | 'stopped';

/**
 * Keeps a slice equal to what Redis holds for its slots. Start: note the
 * stream's last id, load the slots, then apply every change after that id
 * (changes already in the loaded data apply as no-ops). The applied stream
 * position is the watermark that consistency tokens wait on.
 */
export class SliceFollower {
  state: SliceState = 'idle';
  watermark = STREAM_START;
  /** Changes applied since start (all slots' changes advance the watermark; only owned ones touch the slice). */
  applied = 0;
  lastError: string | undefined;
  private readonly owned: Set<number>;
  private readonly waiters = new Set<Waiter>();
  private loop: Promise<void> | undefined;

  constructor(private readonly options: SliceFollowerOptions) {
    this.owned = new Set(options.slots);
  }

  /** Loads the owned slots; resolves once the slice is ready to serve. */
  async load(): Promise<void> {
    const { store, slice } = this.options;
    this.state = 'loading';
    const stale = slice.entries().map((e) => e.templateId);
    if (stale.length > 0) slice.remove(stale);
    const { lastId } = await store.streamInfo();
    for await (const batch of store.loadSlots(this.options.slots)) slice.add(batch);
    await slice.scorer.flush();
    this.advance(lastId);
    this.state = 'serving';
  }

  /** Starts following the change stream in the background. */
  follow(): void {
    this.loop ??= this.run();
  }

  /** Resolves once the watermark reaches `token`; rejects after timeoutMs. */
  waitFor(token: string, timeoutMs: number): Promise<void> {
    if (!isStreamId(token)) return Promise.reject(new InvalidArgumentError(`consistency token '${token}' is not a change id`, 'TOKEN'));
    if (compareStreamIds(this.watermark, token) >= 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        token,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new DeadlineError(`change ${token} not applied in time (watermark ${this.watermark})`));
        }, Math.max(0, timeoutMs)),
      };
      this.waiters.add(waiter);
    });
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    this.options.blockingClient.disconnect();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new DeadlineError('shard is shutting down'));
    }
    this.waiters.clear();
    await this.loop?.catch(() => undefined);
  }

  private get stopped(): boolean {
    return this.state === 'stopped';
  }

  private async run(): Promise<void> {
    const { store, blockingClient } = this.options;
    const blockMs = this.options.blockMs ?? 1000;
    let backoff = 100;
    while (!this.stopped) {
      try {
        const changes = await store.readChanges(this.watermark, 1000, blockMs, blockingClient);
        if (changes.length > 0 && (await this.reloadIfTrimmed())) continue;
        for (const c of changes) await this.apply(c);
        backoff = 100;
        this.lastError = undefined;
      } catch (err) {
        if (this.stopped) return;
        this.lastError = (err as Error).message;
        this.options.onEvent?.('stream-error', { error: this.lastError, retryMs: backoff });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  private async apply(change: Change): Promise<void> {
    if (this.owned.has(change.slot)) {
      const { store, slice } = this.options;
      if (change.removed.length > 0) slice.remove(change.removed);
      if (change.added.length > 0) slice.add(await store.fetch(change.slot, change.added.filter((id) => !slice.has(id))));
    }
    this.applied++;
    this.advance(change.id);
  }

  /** A follower that fell behind the stream's trimmed start has lost changes: it reloads its slots instead of applying them. */
  private async reloadIfTrimmed(): Promise<boolean> {
    const info = await this.options.store.streamInfo();
    if (!GalleryStore.lostChanges(this.watermark, info)) return false;
    this.options.onEvent?.('reload', { watermark: this.watermark, oldest: info.firstId });
    await this.load();
    return true;
  }

  private advance(id: string): void {
    if (compareStreamIds(id, this.watermark) <= 0) return;
    this.watermark = id;
    for (const w of this.waiters) {
      if (compareStreamIds(id, w.token) >= 0) {
        clearTimeout(w.timer);
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }
}
