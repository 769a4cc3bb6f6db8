import { CancelledError, DeadlineError, InvalidArgumentError, YocoError, clampTimeout, shown, getErrorMessage } from '@yoco/common';
import { UnknownTokenError } from './errors/index.js';
import { ReplyError, type Redis } from 'ioredis';
import type { GallerySlice } from './gallery-slice.js';
import { GalleryStore, type Change, type StreamInfo } from './gallery-store.js';
import type { Template } from './template-record.js';
import { compareStreamIds, isStreamId, STREAM_START } from './stream-id.js';

export interface SliceFollowerOptions {
  store: GalleryStore;
  /** The empty slice the first load fills; later slices come from its fresh() and compact(). */
  slice: GallerySlice;
  /** The slots this shard owns at start (setSlots changes them while it follows). */
  slots: number[];
  /** A connection of its own: XREAD BLOCK holds it. */
  blockingClient: Redis;
  /** How long one XREAD waits for news (ms); default 1000. Also how often the stream's ends are checked when nothing is written. */
  blockMs?: number;
  /** Attempts at one change before the follower gives up on it and reloads its slots instead; default 5. */
  maxChangeAttempts?: number;
  /** Compact once dead rows pass this fraction of all rows (and compactMinDead); default 0.25. */
  compactFraction?: number;
  /** ... and at least this many; default 1024. */
  compactMinDead?: number;
  /** Called on every notable event, for logs and metrics (see FollowerEvent). */
  onEvent?: (event: FollowerEvent, detail: Record<string, unknown>) => void;
  /** Called whenever `state` changes (health follows it). */
  onState?: (state: SliceState) => void;
}

/**
 * - reload: the slots are being loaded again (detail.reason);
 * - swap: a new slice took over (after a load or a compaction);
 * - compaction: dead rows were dropped (detail.before, detail.after rows);
 * - change-failed: a change could not be applied (detail.id, attempt, error);
 * - bad-template: a stored record could not be used and was skipped;
 * - rows-refused: templates did not fit in the scorer (detail.count);
 * - stream-error: Redis could not be read (detail.error, retryMs);
 * - slots-gained / slots-dropped: setSlots' slots taken on or let go (detail.slots, held).
 */
export type FollowerEvent = 'reload' | 'swap' | 'compaction' | 'change-failed' | 'bad-template' | 'rows-refused' | 'stream-error' | 'slots-gained' | 'slots-dropped';

interface Waiter {
  token: string;
  /** streamInfo reads begun before this waiter came: only a later one can say the token is not in the store. */
  asks: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * idle: not loaded yet; loading: the first load; serving: complete up to the
 * watermark; reloading: it knows it missed changes (or could not apply one)
 * and is loading its slots again, beside the slice it had; stopped.
 */
export type SliceState = 'idle' | 'loading' | 'serving' | 'reloading' | 'stopped';

/** Changes read per XREAD. */
const READ_COUNT = 1000;

/**
 * Slots gained (setSlots) loaded per turn of the loop, between reads of the
 * stream: small enough that changes keep being applied while a shard takes
 * on a third of the gallery, and at most one pipeline of loadSlots.
 */
const GAIN_SLOTS_PER_TURN = 16;

/**
 * Whether a failure says something about the change (a record of ours that
 * cannot be used, a reply Redis gave, a bug) rather than about reaching Redis
 * (ioredis' connection errors, which are plain Errors and system errors): only
 * the first kind counts towards giving up on a change.
 */
function aboutTheChange(err: unknown): boolean {
  return err instanceof YocoError || err instanceof ReplyError || err instanceof TypeError || err instanceof RangeError;
}

/**
 * Keeps a slice equal to what Redis holds for its slots. A load notes the
 * stream's last id, fills a fresh slice beside the live one, then swaps it
 * in whole: a search only ever sees a complete slice. Then every change after
 * that id is applied (changes already in the loaded data apply as no-ops).
 * The applied stream position is the watermark that consistency tokens wait
 * on; the time it last confirmed holding the stream's head is its freshness.
 *
 * The follower is the only writer of its slices (loads, changes and
 * compactions all run on its one loop); searches read the current slice
 * through use(), and a slice that was swapped out is closed once the last
 * search on it has finished.
 */
export class SliceFollower {
  state: SliceState = 'idle';
  watermark = STREAM_START;
  /** Changes applied since start (all slots' changes advance the watermark; only owned ones touch the slice). */
  applied = 0;
  /** Entries of the stream up to the watermark: entries-added at the last load, plus every change read since. */
  private seen = 0;
  lastError: string | undefined;
  /** Why the follower is (or last was) not serving. */
  reason: string | undefined;
  /** Epoch ms at which the follower last knew it held every change in the stream; 0 before the first load. */
  confirmedAt = 0;
  private current: GallerySlice;
  private readonly users = new Map<GallerySlice, number>();
  private readonly retired = new Set<GallerySlice>();
  /** Slots held and followed. */
  private owned: Set<number>;
  /** Slots the shard must hold (setSlots): gained ones are loaded a few per turn, lost ones dropped. */
  private wanted: Set<number>;
  private readonly waiters = new Set<Waiter>();
  /** streamInfo reads begun by the loop. */
  private asks = 0;
  /** The store's restore id when the slots were last loaded: another one means the data was replaced under the reader. */
  private restoreId = '';
  private loop: Promise<void> | undefined;
  /** Set when the follower knows its slice is incomplete; the loop reloads before anything else. */
  private reloadReason: string | undefined;
  private readonly attempts = new Map<string, number>();
  private readonly blockMs: number;
  private readonly maxChangeAttempts: number;

  constructor(private readonly options: SliceFollowerOptions) {
    this.owned = new Set(options.slots);
    this.wanted = new Set(options.slots);
    this.current = options.slice;
    this.blockMs = options.blockMs ?? 1000;
    this.maxChangeAttempts = options.maxChangeAttempts ?? 5;
    if (!(this.blockMs >= 1)) throw new RangeError(`blockMs must be at least 1, got ${options.blockMs}`);
    if (!(Number.isInteger(this.maxChangeAttempts) && this.maxChangeAttempts >= 1)) throw new RangeError(`maxChangeAttempts must be a positive integer, got ${options.maxChangeAttempts}`);
  }

  /** Whether every one of these slots is held (loaded and followed). */
  holdsAll(slots: number[]): boolean {
    return slots.every((s) => this.owned.has(s));
  }

  /** Slots held now. */
  get held(): number {
    return this.owned.size;
  }

  /** How many of these slots are held. */
  heldOf(slots: number[]): number {
    let n = 0;
    for (const s of slots) if (this.owned.has(s)) n++;
    return n;
  }

  /**
   * The slots to hold from now on. Gained ones are loaded by the loop, a few
   * per turn between reads of the stream, at the stream position it has
   * reached (changes from there on apply to them, as no-ops where the load
   * already had them); lost ones are dropped and their rows compacted away.
   */
  setSlots(slots: number[]): void {
    this.wanted = new Set(slots);
  }

  /** The slice searches read now. */
  get slice(): GallerySlice {
    return this.current;
  }

  /** Milliseconds since the follower last confirmed it held the stream's head (Infinity before its first load). */
  get stalenessMs(): number {
    return this.confirmedAt === 0 ? Infinity : Math.max(0, Date.now() - this.confirmedAt);
  }

  /**
   * Runs fn on the current slice; a slice swapped out meanwhile stays open
   * until fn (and every other user) is done with it.
   */
  async use<T>(fn: (slice: GallerySlice) => Promise<T>): Promise<T> {
    const slice = this.current;
    this.users.set(slice, (this.users.get(slice) ?? 0) + 1);
    try {
      return await fn(slice);
    } finally {
      const left = this.users.get(slice)! - 1;
      if (left > 0) this.users.set(slice, left);
      else {
        this.users.delete(slice);
        if (this.retired.delete(slice)) void slice.close();
      }
    }
  }

  /** Loads the owned slots into a fresh slice and swaps it in; resolves once it serves. */
  async load(): Promise<void> {
    const { store } = this.options;
    const first = this.state === 'idle';
    let loaded = this.owned;
    this.setState(first ? 'loading' : 'reloading');
    // Taken now: anything that marks the slice incomplete from here on (a fault in the new slice) stands.
    const reason = this.reloadReason;
    this.reloadReason = undefined;
    let fresh: GallerySlice | undefined;
    let info: StreamInfo;
    const startedAt = Date.now();
    try {
      info = await store.streamInfo();
      // The first load fills the slice it was given (nobody searches it yet); later ones build beside the live one.
      fresh = first && this.current.rows === 0 ? this.current : this.current.fresh();
      let refused = 0;
      const onBad = (err: Error, slot: number) => this.options.onEvent?.('bad-template', { slot, error: err.message });
      const wanted = [...this.wanted].sort((a, b) => a - b);
      for await (const batch of store.loadSlots(wanted, { onBad })) refused += this.addFitting(fresh, batch);
      loaded = new Set(wanted);
      if (refused > 0) this.options.onEvent?.('rows-refused', { count: refused, capacity: fresh.scorer.capacity, during: 'load' });
      await fresh.scorer.flush();
    } catch (err) {
      if (fresh && fresh !== this.current) await fresh.close();
      this.reloadReason ??= reason ?? `the last load failed: ${getErrorMessage(err)}`;
      throw err;
    }
    if (fresh !== this.current) this.swap(fresh);
    this.owned = loaded;
    this.watermark = info.lastId;
    this.seen = info.entriesAdded;
    this.restoreId = info.restoreId;
    this.release(info.lastId);
    this.attempts.clear();
    this.confirmedAt = startedAt;
    if (this.reloadReason === undefined) {
      this.reason = undefined;
      this.setState('serving');
    }
  }

  /** Starts following the change stream in the background. */
  follow(): void {
    this.loop ??= this.run();
  }

  /**
   * Marks the slice incomplete (a scorer lost rows, say): not serving from
   * now on, and the loop reloads the slots as soon as it can.
   */
  requestReload(reason: string): void {
    if (this.stopped) return;
    this.reloadReason ??= reason;
    this.reason = reason;
    if (this.state === 'serving') this.setState('reloading');
  }

  /** Resolves once the watermark reaches `token`; rejects after timeoutMs (or at once when the signal aborts). */
  waitFor(token: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (!isStreamId(token)) return Promise.reject(new InvalidArgumentError(`consistency token ${shown(token)} is not a change id`, 'TOKEN'));
    if (compareStreamIds(this.watermark, token) >= 0) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(new CancelledError());
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        token,
        asks: this.asks,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new DeadlineError(`change ${token} not applied in time (watermark ${this.watermark})`));
        }, clampTimeout(timeoutMs)),
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', () => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(waiter.timer);
        reject(new CancelledError());
      }, { once: true });
    });
  }

  async stop(): Promise<void> {
    this.setState('stopped');
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

  private setState(state: SliceState): void {
    if (this.state === state || this.state === 'stopped') return;
    this.state = state;
    this.options.onState?.(state);
  }

  private async run(): Promise<void> {
    const { store, blockingClient } = this.options;
    let backoff = 100;
    while (!this.stopped) {
      try {
        if (this.reloadReason !== undefined) {
          this.options.onEvent?.('reload', { reason: this.reloadReason, watermark: this.watermark });
          await this.load();
          continue;
        }
        await this.dropLost();
        const gaining = await this.gainSome();
        const from = this.watermark;
        // While slots are being gained the read does not wait: the next few are loaded as soon as the changes are applied.
        const changes = await store.readChanges(from, READ_COUNT, gaining ? 0 : this.blockMs, blockingClient);
        const repliedAt = Date.now();
        if (this.stopped) return;
        // Checked on every read, written to or not: a follower that was frozen while the stream was
        // trimmed finds out now, not when the next write happens to arrive.
        const asked = ++this.asks;
        const info = await store.streamInfo(from);
        const lost = info.restoreId !== this.restoreId ? `the store was restored from a backup (restore ${info.restoreId})` : GalleryStore.lostChanges(from, this.seen, info);
        this.refuseUnknown(info.lastId, asked);
        if (lost) {
          this.requestReload(`lost changes: ${lost}`);
          continue;
        }
        for (const c of changes) {
          if (!(await this.applyOrCount(c))) break;
        }
        if (this.reloadReason !== undefined) continue;
        // A read that was not cut short by COUNT returned everything up to the head as it was then.
        if (changes.length < READ_COUNT) this.confirmedAt = repliedAt;
        await this.compactIfWorthIt();
        backoff = 100;
        this.lastError = undefined;
      } catch (err) {
        if (this.stopped) return;
        this.lastError = getErrorMessage(err);
        this.options.onEvent?.('stream-error', { error: this.lastError, retryMs: backoff });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  /**
   * Applies one change. A change that fails for another reason than Redis
   * being unreachable is counted; after maxChangeAttempts the follower stops
   * retrying it and reloads its slots (which skip what cannot be used) rather
   * than let one change hold up replication for every slot. False when the
   * follower gave up on it.
   */
  private async applyOrCount(change: Change): Promise<boolean> {
    try {
      await this.apply(change);
      this.attempts.delete(change.id);
      return true;
    } catch (err) {
      if (!aboutTheChange(err)) throw err;
      const attempt = (this.attempts.get(change.id) ?? 0) + 1;
      this.attempts.set(change.id, attempt);
      this.options.onEvent?.('change-failed', { id: change.id, subject: change.subjectId, attempt, error: getErrorMessage(err) });
      if (attempt < this.maxChangeAttempts) throw err;
      this.requestReload(`change ${change.id} could not be applied after ${attempt} attempts: ${getErrorMessage(err)}`);
      return false;
    }
  }

  private async apply(change: Change): Promise<void> {
    if (this.owned.has(change.slot)) {
      const { store } = this.options;
      const slice = this.current;
      if (change.removed.length > 0) slice.remove(change.removed);
      const fresh = change.added.filter((id) => !slice.has(id));
      if (fresh.length > 0) {
        const templates = await store.fetch(change.slot, fresh);
        // Room is made by compaction when dead rows would keep the new ones out.
        if (templates.length > this.current.room && this.current.dead > 0) await this.compact();
        const refused = this.addFitting(this.current, templates);
        if (refused > 0) this.options.onEvent?.('rows-refused', { count: refused, capacity: this.current.scorer.capacity, change: change.id });
      }
    }
    this.applied++;
    this.seen++;
    this.advance(change.id);
  }

  /**
   * Loads up to GAIN_SLOTS_PER_TURN wanted slots not held yet into the live
   * slice; true while more remain. The loop is the only writer, and the load
   * reads Redis as it is now, at or past the watermark: the changes read next
   * (from the watermark on) then apply to these slots too.
   */
  private async gainSome(): Promise<boolean> {
    const gain: number[] = [];
    for (const s of this.wanted) {
      if (this.owned.has(s)) continue;
      gain.push(s);
      if (gain.length === GAIN_SLOTS_PER_TURN) break;
    }
    if (gain.length === 0) return false;
    const onBad = (err: Error, slot: number) => this.options.onEvent?.('bad-template', { slot, error: err.message });
    let refused = 0;
    for await (const batch of this.options.store.loadSlots(gain, { onBad, batch: GAIN_SLOTS_PER_TURN })) refused += this.addFitting(this.current, batch);
    if (refused > 0) this.options.onEvent?.('rows-refused', { count: refused, capacity: this.current.scorer.capacity, during: 'gain' });
    for (const s of gain) this.owned.add(s);
    this.options.onEvent?.('slots-gained', { slots: gain.length, held: this.owned.size });
    return gain.length === GAIN_SLOTS_PER_TURN;
  }

  /** Drops the held slots no longer wanted, then compacts so their memory comes back. */
  private async dropLost(): Promise<void> {
    const lost = new Set([...this.owned].filter((s) => !this.wanted.has(s)));
    if (lost.size === 0) return;
    for (const s of lost) this.owned.delete(s);
    const templates = this.current.removeSlots(lost);
    this.options.onEvent?.('slots-dropped', { slots: lost.size, templates, held: this.owned.size });
    if (this.current.dead > 0) await this.compact();
  }

  /** Adds what fits; returns how many templates did not (a full scorer refuses rows before wasm memory would). */
  private addFitting(slice: GallerySlice, templates: Template[]): number {
    const room = Math.max(0, slice.room);
    if (templates.length <= room) {
      slice.add(templates);
      return 0;
    }
    slice.add(templates.slice(0, room));
    return templates.length - room;
  }

  private async compactIfWorthIt(): Promise<void> {
    const s = this.current;
    const minDead = this.options.compactMinDead ?? 1024;
    const fraction = this.options.compactFraction ?? 0.25;
    if (s.dead >= minDead && s.dead > fraction * s.rows) await this.compact();
  }

  /** Copies the live rows into a new slice and swaps it in; no change lands in between (this loop is the only writer). */
  private async compact(): Promise<void> {
    const s = this.current;
    await s.scorer.flush();
    if (!s.scorer.idle || s !== this.current) return;
    const before = s.rows;
    const next = s.compact();
    this.swap(next);
    this.options.onEvent?.('compaction', { before, after: next.rows });
  }

  private swap(next: GallerySlice): void {
    const old = this.current;
    this.current = next;
    this.options.onEvent?.('swap', { templates: next.templates, rows: next.rows });
    if (this.users.has(old)) this.retired.add(old);
    else void old.close();
  }

  private advance(id: string): void {
    if (compareStreamIds(id, this.watermark) <= 0) return;
    this.watermark = id;
    this.release(id);
  }

  /**
   * A token is handed out only once its change is in the primary, before the
   * search that waits on it arrives. So a read of the stream begun after the
   * waiter came that shows the newest id below the token means this store
   * never had that change, and never will: the primary that had it died
   * before a replica got it, or the token is from another store. Such a
   * waiter is refused now, not left to its deadline.
   */
  private refuseUnknown(lastId: string, asked: number): void {
    for (const w of this.waiters) {
      if (w.asks >= asked || compareStreamIds(w.token, lastId) <= 0) continue;
      clearTimeout(w.timer);
      this.waiters.delete(w);
      w.reject(new UnknownTokenError(w.token, lastId));
    }
  }

  private release(id: string): void {
    for (const w of this.waiters) {
      if (compareStreamIds(id, w.token) >= 0) {
        clearTimeout(w.timer);
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }
}
