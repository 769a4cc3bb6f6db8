import { getErrorMessage, UnavailableError } from '@yoco/common';
import { compareStreamIds, ownedSlots, SLOT_COUNT, type SlotMask, type Topology, type TopologyStore } from '@yoco/gallery';
import type { Logger } from '@yoco/rpc';

/** One epoch as this shard index sees it: its k, and the slots this index owns in it (none at or beyond k). */
export interface EpochView {
  epoch: number;
  k: number;
  slots: number[];
  mask: SlotMask;
  /** Set on the next epoch: the stream position a replica must have applied to count as caught up. */
  fromId?: string;
  /** The head the epoch runs ('' before any rollout: the store meta's, the one the shard started with). */
  headId: string;
}

export interface ShardTopologyOptions {
  index: number;
  /** k to seed the store with when it has no topology yet. */
  seedK: number;
  store: TopologyStore;
  pollMs: number;
  /** How long the epoch before a switch stays answerable (for coordinators that have not seen the switch yet). */
  retireMs: number;
  logger: Logger;
  /** Called when the slots this shard must hold change. */
  onChange: () => void;
}

function view(index: number, epoch: number, k: number, headId: string, fromId?: string): EpochView {
  const slots = index < k ? ownedSlots(index, k) : [];
  const mask = new Uint8Array(SLOT_COUNT);
  for (const s of slots) mask[s] = 1;
  return { epoch, k, slots, mask, fromId, headId };
}

/**
 * The topology from this shard's side: the current epoch, the next one while
 * a change is in progress, and the one before a switch for a grace period.
 * Read from the store of record every pollMs; a read that fails keeps the
 * last one known.
 */
export class ShardTopology {
  current: EpochView | undefined;
  next: EpochView | undefined;
  private retiring: { view: EpochView; until: number } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ShardTopologyOptions) {}

  /** Seeds (first start) and reads the topology; then polls it. */
  async start(): Promise<void> {
    this.apply(await this.options.store.seed(this.options.seedK));
    const k = this.current!.k;
    if (k !== this.options.seedK) this.options.logger.info({ k, shardCount: this.options.seedK }, 'the topology on record has another k than SHARD_COUNT; it is the truth');
    this.timer = setInterval(() => void this.poll(), this.options.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Reads the topology now (the poll does this every pollMs). */
  async poll(): Promise<void> {
    try {
      const t = await this.options.store.read();
      if (t) this.apply(t);
    } catch (err) {
      this.options.logger.debug({ err: getErrorMessage(err) }, 'cannot read the topology; keeping the last one known');
    }
    if (this.retiring && Date.now() >= this.retiring.until) {
      this.options.logger.info({ epoch: this.retiring.view.epoch }, 'epoch retired: dropping the slots only it needed');
      this.retiring = undefined;
      this.options.onChange();
    }
  }

  private apply(t: Topology): void {
    const { index } = this.options;
    const before = this.current;
    const nextBefore = this.next;
    if (!before || before.epoch !== t.epoch) {
      // A switch seen: the epoch it replaces stays answerable a while (an abort drops the next one at once).
      if (before && t.epoch > before.epoch) this.retiring = { view: before, until: Date.now() + this.options.retireMs };
      this.current = nextBefore?.epoch === t.epoch ? { ...nextBefore, fromId: undefined } : view(index, t.epoch, t.k, t.headId ?? '');
      if (before) this.options.logger.info({ epoch: t.epoch, k: t.k, from: before.epoch }, 'topology switched');
    }
    this.next = t.next ? (this.next?.epoch === t.next.epoch ? this.next : view(index, t.next.epoch, t.next.k, t.next.headId ?? t.headId ?? '', t.next.fromId)) : undefined;
    if (this.current !== before || this.next !== nextBefore) this.options.onChange();
  }

  /** Every slot this shard must hold now: the current epoch's, the next one's, and a retiring one's. */
  wanted(): number[] {
    const all = new Set<number>();
    for (const v of this.epochs(true)) for (const s of v.slots) all.add(s);
    return [...all].sort((a, b) => a - b);
  }

  /** The epoch before the last switch while it is still answerable. */
  get retiringView(): EpochView | undefined {
    return this.retiring?.view;
  }

  /** The epochs in play: current and next (and, with `retiring`, the one before a switch). */
  epochs(retiring = false): EpochView[] {
    return [this.current, this.next, retiring ? this.retiring?.view : undefined].filter((v): v is EpochView => v !== undefined);
  }

  /** Its index is at or beyond k in every epoch in play: nothing to serve, safe to delete. */
  get surplus(): boolean {
    return this.epochs(true).every((v) => v.slots.length === 0);
  }

  /**
   * The epoch a request is for: the one it names, else the one with its k,
   * else the current one. UNAVAILABLE when this shard does not know it (yet,
   * or any more): the caller asks another replica.
   */
  viewFor(epoch: number, k: number): EpochView {
    const all = this.epochs(true);
    const found = epoch > 0 ? all.find((v) => v.epoch === epoch) : k > 0 ? all.find((v) => v.k === k) : this.current;
    if (!found) {
      const known = all.map((v) => `${v.epoch} (k=${v.k})`).join(', ');
      throw new UnavailableError(`shard ${this.options.index} does not serve epoch ${epoch || `with k=${k}`}; it knows ${known || 'none yet'}`, 'EPOCH');
    }
    return found;
  }
}

/** Whether a watermark is at or past where a change began ('' or unset: nothing to catch up to). */
export function caughtUp(watermark: string, fromId: string | undefined): boolean {
  return !fromId || compareStreamIds(watermark, fromId) >= 0;
}
