import { BoundFloors, RescoredTopK, rankedOf, rescoreReaching, rescoreWithinBounds, sigmoid, topK, type Ranked, type ScanBounds, type Scorer } from '@yoco/head';
import { SLOT_COUNT, slotOf } from './slots.js';
import type { Template } from './template-record.js';

/** Subjects rescored from float32 per int8 search, before the bound decides whether more are needed: k times this. */
const EXACT_OVERSAMPLE = 4;
/** How far down the approximate order a search walks before it falls back to a pass over every row's own bound. */
const EXACT_WIDE = 16;

/** Which slots a search may answer from: 1 at a slot's index (SLOT_COUNT long). */
export type SlotMask = Uint8Array;

export interface SubjectMatch {
  subjectId: string;
  /** The subject's best template. */
  templateId: string;
  score: number;
  logit: number;
}

/**
 * The part of the gallery one shard serves: the scorer's rows plus which
 * subject and template each row is. Subjects are ranked by their best
 * template, so a subject never appears twice in a result.
 */
export class GallerySlice {
  private readonly templateRow = new Map<string, number>();
  private rowTemplate: string[] = [];
  /** Subject ordinal per row (-1 once removed). */
  private rowSubject = new Int32Array(1024).fill(-1);
  private readonly subjectOrd = new Map<string, number>();
  private subjectIds: string[] = [];
  /** Slot per subject ordinal: while the shard count changes, a search answers from one epoch's slots only. */
  private subjectSlot = new Int16Array(1024);
  /** Live templates per slot: an epoch's share of the slice, counted without a walk. */
  private slotTemplates = new Int32Array(SLOT_COUNT);
  /** Live rows per subject ordinal. */
  private subjectRows: Set<number>[] = [];
  /** Subjects rescored from float32 by int8 searches, over this slice's life (how much the bound costs). */
  rescored = 0;
  private freeOrds: number[] = [];
  private scratch: { best: Float64Array; bestRow: Int32Array; alive: Uint8Array } | undefined;

  constructor(readonly scorer: Scorer) {}

  get templates(): number {
    return this.templateRow.size;
  }

  /** Templates held in these slots (one epoch's share while the slice holds two epochs' slots). */
  templatesIn(slots: number[]): number {
    let n = 0;
    for (const s of slots) n += this.slotTemplates[s];
    return n;
  }

  /** Rows the scorer holds, dead ones included. */
  get rows(): number {
    return this.scorer.size;
  }

  /** Rows of removed or replaced templates still taking space until compact(). */
  get dead(): number {
    return this.scorer.dead;
  }

  /** Templates that can still be added before the scorer is full (dead rows count until compact()). */
  get room(): number {
    return this.scorer.capacity - this.scorer.size;
  }

  get subjects(): number {
    return this.subjectOrd.size;
  }

  has(templateId: string): boolean {
    return this.templateRow.has(templateId);
  }

  subjectTemplates(subjectId: string): string[] {
    const ord = this.subjectOrd.get(subjectId);
    if (ord === undefined) return [];
    return [...this.subjectRows[ord]].map((r) => this.rowTemplate[r]);
  }

  /** Adds templates not already present (a replayed change is a no-op); returns how many were new. */
  add(templates: Template[]): number {
    const seen = new Set<string>();
    const fresh = templates.filter((t) => {
      if (this.templateRow.has(t.templateId) || seen.has(t.templateId)) return false;
      seen.add(t.templateId);
      return true;
    });
    if (fresh.length === 0) return 0;
    const dim = this.scorer.head.dim;
    const rows = new Float32Array(fresh.length * dim);
    fresh.forEach((t, i) => rows.set(t.vector, i * dim));
    const first = this.scorer.add(rows);
    this.ensureRows(first + fresh.length);
    fresh.forEach((t, i) => {
      const row = first + i;
      const ord = this.ordinal(t.subjectId);
      this.templateRow.set(t.templateId, row);
      this.rowTemplate[row] = t.templateId;
      this.rowSubject[row] = ord;
      this.subjectRows[ord].add(row);
      this.slotTemplates[this.subjectSlot[ord]]++;
    });
    return fresh.length;
  }

  /** Removes templates by id (unknown ids are skipped); returns how many were removed. */
  remove(templateIds: string[]): number {
    let n = 0;
    for (const id of templateIds) {
      const row = this.templateRow.get(id);
      if (row === undefined) continue;
      this.scorer.remove(row);
      this.templateRow.delete(id);
      this.rowTemplate[row] = '';
      const ord = this.rowSubject[row];
      this.rowSubject[row] = -1;
      this.slotTemplates[this.subjectSlot[ord]]--;
      const rows = this.subjectRows[ord];
      rows.delete(row);
      if (rows.size === 0) {
        this.subjectOrd.delete(this.subjectIds[ord]);
        this.subjectIds[ord] = '';
        this.freeOrds.push(ord);
      }
      n++;
    }
    return n;
  }

  /** Removes every template of a subject. */
  removeSubject(subjectId: string): number {
    return this.remove(this.subjectTemplates(subjectId));
  }

  /** Removes every template of the subjects in these slots (slots the shard no longer owns); returns how many. */
  removeSlots(slots: Set<number>): number {
    const ids: string[] = [];
    for (const [subjectId, ord] of this.subjectOrd) if (slots.has(this.subjectSlot[ord])) ids.push(...this.subjectTemplates(subjectId));
    return this.remove(ids);
  }

  /**
   * The k best subjects for a query, best first; ties broken by the lower row.
   * With `mask`, only subjects of the slots it marks (one epoch's, while the shard count changes).
   */
  async search(query: Float32Array, k: number, mask?: SlotMask): Promise<SubjectMatch[]> {
    const { logits, alive, count, bounds } = await this.scorer.scan(query);
    return bounds ? this.bestSubjectsExact(logits, alive, count, k, bounds, mask) : this.bestSubjects(logits, alive, count, k, mask);
  }

  /** search() for several queries in one pass over the rows (the shard batches concurrent calls into this), each with its own mask. */
  async searchMany(queries: Float32Array[], k: number, masks?: (SlotMask | undefined)[]): Promise<SubjectMatch[][]> {
    const { logits, alive, count, bounds } = await this.scorer.scanMany(queries);
    return logits.map((l, i) => {
      const b = bounds?.[i];
      return b ? this.bestSubjectsExact(l, alive, count, k, b, masks?.[i]) : this.bestSubjects(l, alive, count, k, masks?.[i]);
    });
  }

  /**
   * The subject-level top-k from approximate logits (the int8 engine), made
   * exact: the k x OVERSAMPLE subjects with the highest bounds are rescored
   * from float32 P, then every other subject whose bound still reaches the
   * k-th best exact score (rescoreWithinBounds). A subject left out cannot
   * beat the k-th, so the answer is the float32 engine's.
   * Synchronous (bounds.exact must run before the next scan).
   */
  private bestSubjectsExact(logits: ArrayLike<number>, rowAlive: Uint8Array, count: number, k: number, bounds: ScanBounds, mask?: SlotMask): SubjectMatch[] {
    const wanted = k * EXACT_WIDE;
    const wide = this.widestSubjects(logits as Float64Array, rowAlive, count, wanted, bounds, mask);
    const slotOfOrd = this.subjectSlot;
    const rowSubject = this.rowSubject;
    const exact = new Map<number, { logit: number; row: number }>();
    // Each subject's exact logit is final once its rows are rescored (a subject is rescored once): the k-th best
    // of them kept at hand, not sorted out of the map at every step.
    const best = this.rescoredBest.reset(k);
    const rescore = (ords: number[]) => {
      const rows: number[] = [];
      const owner: number[] = [];
      for (const o of ords) {
        for (const r of this.subjectRows[o]) {
          if (r >= count || rowAlive[r] === 0) continue;
          rows.push(r);
          owner.push(o);
        }
      }
      const got = bounds.exact(rows);
      for (let i = 0; i < rows.length; i++) {
        const prev = exact.get(owner[i]);
        if (!prev || got[i] > prev.logit || (got[i] === prev.logit && rows[i] < prev.row)) exact.set(owner[i], { logit: got[i], row: rows[i] });
      }
      for (const o of ords) {
        const e = exact.get(o);
        if (e) best.add(o, e.logit);
      }
    };
    const kth = () => best.kth();
    // One pass over the rows, each against its own bound.
    const beyond = (floor: number) => {
      const more = new Set<number>();
      for (let row = 0; row < count; row++) {
        if (logits[row] + bounds.rowSlack[row] < floor) continue;
        const ord = rowSubject[row];
        if (ord < 0 || rowAlive[row] === 0 || exact.has(ord)) continue;
        if (mask !== undefined && mask[slotOfOrd[ord]] === 0) continue;
        more.add(ord);
      }
      return [...more];
    };
    const step = { first: k * EXACT_OVERSAMPLE, step: k, slack: bounds.slack, kth, rescore, beyond };
    // The subjects by the most their exact logit can be (each one's largest approximate logit plus its row's
    // bound): those reaching the floor as they come, or the widest of all ranked, well past the first step.
    if ('floor' in wide) rescoreReaching({ ...wide, ...step });
    else rescoreWithinBounds({ wide, limit: wanted, ...step });
    this.rescored += exact.size;
    return [...exact.entries()]
      .sort(([oa, a], [ob, b]) => b.logit - a.logit || oa - ob)
      .slice(0, k)
      .map(([o, e]) => ({ subjectId: this.subjectIds[o], templateId: this.rowTemplate[e.row], score: sigmoid(e.logit), logit: e.logit }));
  }

  /** Whether the slice holds the subject in a slot the mask marks (any slot without one). */
  holds(subjectId: string, mask?: SlotMask): boolean {
    const ord = this.subjectOrd.get(subjectId);
    return ord !== undefined && (!mask || mask[this.subjectSlot[ord]] === 1);
  }

  /**
   * The candidate subjects by their bounds (each one's best row's
   * approximate logit plus that row's bound): the subjects of the rows whose
   * bound reaches a floor from the scan's blocks, unranked, when they are at
   * least `wanted` (a subject outside them has every row below the floor);
   * else the `wanted` highest of every subject, best first.
   */
  private widestSubjects(logits: Float64Array, rowAlive: Uint8Array, count: number, wanted: number, bounds: ScanBounds, mask?: SlotMask): Ranked | { rows: Int32Array; upper: Float64Array; n: number; floor: number } {
    const floors = BoundFloors.of(bounds.blocks, count, wanted);
    // A subject may own several of the rows a floor promises: a floor for more rows when the first falls short.
    for (const rank of floors ? [wanted, 4 * wanted] : []) {
      const floor = floors!.floor(rank);
      const n = floors!.rowsReaching(logits, bounds.rowSlack, rowAlive, count, floor, this.reaching);
      const ords = this.subjectsOf(this.reaching.rows, n, logits, bounds.rowSlack, mask);
      if (ords.length >= wanted) {
        this.widened[rank === wanted ? 'blocks' : 'wider']++;
        const best = this.reachBest;
        return { rows: Int32Array.from(ords), upper: Float64Array.from(ords, (o) => best[o]), n: ords.length, floor };
      }
    }
    this.widened.everyRow++;
    const { best, alive } = this.bestOfEach(logits, rowAlive, count, mask, bounds.rowSlack);
    return rankedOf(best, this.subjectIds.length, wanted, undefined, alive);
  }

  /** The rescored subjects' best logits of an exact int8 search (one at a time: it is synchronous). */
  private readonly rescoredBest = new RescoredTopK(10);

  /** How int8 searches found their candidates: from the blocks at the first floor, at the wider one, or from every row. */
  readonly widened = { blocks: 0, wider: 0, everyRow: 0 };

  /** Per subject: the search that last touched it, and its best bound then (widestSubjects' scratch). */
  private reachStamp = new Int32Array(0);
  private reachBest = new Float64Array(0);
  private reachGeneration = 0;

  /** The rows scratch widestSubjects reads the rows reaching a floor into. */
  private readonly reaching = { rows: new Int32Array(1024) };

  /** The subjects (ordinals, in order of their first row) of these live rows that are held and unmasked; reachBest holds their best bounds among them. */
  private subjectsOf(rows: Int32Array, n: number, logits: Float64Array, rowSlack: Float32Array, mask?: SlotMask): number[] {
    const nSubjects = this.subjectIds.length;
    if (this.reachStamp.length < nSubjects || this.reachGeneration === 2 ** 31 - 1) {
      const size = Math.max(nSubjects, 1024, this.reachStamp.length * 2);
      this.reachStamp = new Int32Array(size);
      this.reachBest = new Float64Array(size);
      this.reachGeneration = 0;
    }
    const gen = ++this.reachGeneration;
    const stamp = this.reachStamp;
    const best = this.reachBest;
    const ords: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = rows[i];
      const ord = this.rowSubject[row];
      if (ord < 0 || (mask !== undefined && mask[this.subjectSlot[ord]] === 0)) continue;
      const l = logits[row] + rowSlack[row];
      if (stamp[ord] !== gen) {
        stamp[ord] = gen;
        best[ord] = l;
        ords.push(ord);
      } else if (l > best[ord]) best[ord] = l;
    }
    return ords;
  }

  /** Subject-level top-k from row logits. Synchronous, so the scratch arrays cannot be shared by two searches at once. */
  private bestSubjects(logits: ArrayLike<number>, rowAlive: Uint8Array, count: number, k: number, mask?: SlotMask): SubjectMatch[] {
    const nSubjects = this.subjectIds.length;
    const { best, bestRow, alive } = this.bestOfEach(logits, rowAlive, count, mask);
    return topK(best, alive, nSubjects, k).map((m) => ({
      subjectId: this.subjectIds[m.index],
      templateId: this.rowTemplate[bestRow[m.index]],
      score: m.score,
      logit: m.logit,
    }));
  }

  /** The subject's best template against a query, or null when this slice does not hold it. */
  async scoreSubject(subjectId: string, query: Float32Array): Promise<SubjectMatch | null> {
    const ord = this.subjectOrd.get(subjectId);
    if (ord === undefined) return null;
    const rows = [...this.subjectRows[ord]];
    if (rows.length === 0) return null;
    const logits = await this.scorer.logitsOf(query, rows);
    let best = 0;
    for (let i = 1; i < rows.length; i++) if (logits[i] > logits[best] || (logits[i] === logits[best] && rows[i] < rows[best])) best = i;
    // Every row died while it was scored (the subject was removed meanwhile): it is not held any more.
    if (logits[best] === -Infinity) return null;
    return { subjectId, templateId: this.rowTemplate[rows[best]], logit: logits[best], score: sigmoid(logits[best]) };
  }

  /**
   * The same templates without the dead rows, in a slice of its own (a new
   * scorer holding copies of the live rows). Synchronous, so no change can
   * slip in between; needs an idle scorer (await scorer.flush() first). This
   * slice is left untouched for the searches still running on it.
   */
  compact(): GallerySlice {
    const { scorer, map } = this.scorer.compact();
    const next = new GallerySlice(scorer);
    next.ensureRows(scorer.size);
    next.subjectIds = [...this.subjectIds];
    next.subjectSlot = this.subjectSlot.slice();
    next.freeOrds = [...this.freeOrds];
    for (const [id, ord] of this.subjectOrd) next.subjectOrd.set(id, ord);
    // Rows lost to a scorer fault are dead without a removal: they are left out here (a reload brings them back).
    next.subjectRows = this.subjectRows.map((rows) => (rows ? new Set([...rows].map((r) => map[r]).filter((r) => r >= 0)) : rows));
    for (const [templateId, row] of this.templateRow) {
      const to = map[row];
      if (to < 0) continue;
      next.templateRow.set(templateId, to);
      next.rowTemplate[to] = templateId;
      next.rowSubject[to] = this.rowSubject[row];
      next.slotTemplates[next.subjectSlot[this.rowSubject[row]]]++;
    }
    return next;
  }

  /** An empty slice whose scorer shares this one's compiled head (a reload fills it beside this one). */
  fresh(): GallerySlice {
    return new GallerySlice(this.scorer.fresh());
  }

  close(): Promise<void> {
    return this.scorer.close();
  }

  /** Every template id with its subject (tests compare this with Redis). */
  entries(): Array<{ subjectId: string; templateId: string }> {
    return [...this.templateRow.entries()].map(([templateId, row]) => ({ templateId, subjectId: this.subjectIds[this.rowSubject[row]] }));
  }

  /** Per-subject scratch for search, grown as the slice grows (a fresh 400 KB per query at 25k subjects made the GC a tail). */
  /**
   * Each subject's best live row by these logits, among the slots the mask
   * marks: best[ord], bestRow[ord], alive[ord] (it has one). With rowSlack,
   * each row's logit plus its own bound is what is compared. Synchronous: the
   * arrays are the slice's scratch.
   */
  private bestOfEach(logits: ArrayLike<number>, rowAlive: Uint8Array, count: number, mask?: SlotMask, rowSlack?: Float32Array): { best: Float64Array; bestRow: Int32Array; alive: Uint8Array } {
    const nSubjects = this.subjectIds.length;
    const scratch = this.scratchFor(nSubjects);
    const { best, bestRow, alive } = scratch;
    best.fill(-Infinity, 0, nSubjects);
    bestRow.fill(-1, 0, nSubjects);
    // One loop per kind of logits (the int8 engine's float64 with bounds, float32): a loop that sees both reads elements megamorphically, about 3x slower.
    if (rowSlack) bestWithBounds(logits as Float64Array, rowSlack, this.rowSubject, rowAlive, count, this.subjectSlot, mask, best, bestRow);
    else bestPlain(logits, this.rowSubject, rowAlive, count, this.subjectSlot, mask, best, bestRow);
    for (let o = 0; o < nSubjects; o++) alive[o] = bestRow[o] >= 0 ? 1 : 0;
    return scratch;
  }

  private scratchFor(n: number): { best: Float64Array; bestRow: Int32Array; alive: Uint8Array } {
    if (!this.scratch || this.scratch.best.length < n) {
      const size = Math.max(n, 1024, (this.scratch?.best.length ?? 0) * 2);
      this.scratch = { best: new Float64Array(size), bestRow: new Int32Array(size), alive: new Uint8Array(size) };
    }
    return this.scratch;
  }

  private ordinal(subjectId: string): number {
    let ord = this.subjectOrd.get(subjectId);
    if (ord === undefined) {
      ord = this.freeOrds.pop() ?? this.subjectIds.length;
      this.subjectOrd.set(subjectId, ord);
      this.subjectIds[ord] = subjectId;
      if (ord >= this.subjectSlot.length) {
        const grown = new Int16Array(Math.max(ord + 1, this.subjectSlot.length * 2));
        grown.set(this.subjectSlot);
        this.subjectSlot = grown;
      }
      this.subjectSlot[ord] = slotOf(subjectId);
      this.subjectRows[ord] = new Set();
    }
    return ord;
  }

  private ensureRows(n: number): void {
    if (n <= this.rowSubject.length) return;
    const grown = new Int32Array(Math.max(n, this.rowSubject.length * 2)).fill(-1);
    grown.set(this.rowSubject);
    this.rowSubject = grown;
  }
}

function bestPlain(logits: ArrayLike<number>, rowSubject: Int32Array, rowAlive: Uint8Array, count: number, slotOfOrd: Int16Array, mask: SlotMask | undefined, best: Float64Array, bestRow: Int32Array): void {
  for (let row = 0; row < count; row++) {
    const ord = rowSubject[row];
    if (ord < 0 || rowAlive[row] === 0) continue;
    if (mask !== undefined && mask[slotOfOrd[ord]] === 0) continue;
    const l = logits[row];
    if (l > best[ord]) {
      best[ord] = l;
      bestRow[ord] = row;
    }
  }
}

function bestWithBounds(logits: Float64Array, rowSlack: Float32Array, rowSubject: Int32Array, rowAlive: Uint8Array, count: number, slotOfOrd: Int16Array, mask: SlotMask | undefined, best: Float64Array, bestRow: Int32Array): void {
  for (let row = 0; row < count; row++) {
    const ord = rowSubject[row];
    if (ord < 0 || rowAlive[row] === 0) continue;
    if (mask !== undefined && mask[slotOfOrd[ord]] === 0) continue;
    const l = logits[row] + rowSlack[row];
    if (l > best[ord]) {
      best[ord] = l;
      bestRow[ord] = row;
    }
  }
}
