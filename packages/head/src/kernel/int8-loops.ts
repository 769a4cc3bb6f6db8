/**
 * The loops both int8 kernels share (int8-module.ts for simd128,
 * relaxed-module.ts for relaxed SIMD); each kernel gives only what it does
 * with one row's bytes. For a row width wb fixed when the module is built:
 *
 *   rows function (q, r, v, out, n, d): the f64 logit t (d + the row's sum) + base
 *     of each of n rows, and each block's largest bound (rowsFunction)
 *   groups function (q, r, v, out, n, groups): 4 x groups queries, their r
 *     vectors side by side from r; out + 16 (g n + i) holds queries
 *     4g .. 4g + 3 of row i. Blocks of CACHE_ROWS rows are scanned by every
 *     group while they sit in cache.
 */
import {
  BLOCK, BR, BR_IF, END, I32_ADD, I32_CONST, I32_EQZ, I32_LT_U, I32_SUB, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP, SIMD,
  V128_CONST_ZERO, VOID, leb, scanModuleOf, sleb, type ScanFunction,
} from './wasm-encoding.js';
import { BLOCK_ROWS, PAIR_CHUNK, byteOffset, int8Layout } from './int8-layout.js';

const I32_STORE = 0x36;
const I32_SHL = 0x74;
const I32_MUL = 0x6c;
const SELECT = 0x1b;
const I32X4_ADD = [SIMD, ...leb(0xae)];
const I32X4_EXTRACT = (lane: number) => [SIMD, ...leb(0x1b), lane];

/** Queries a groups function scores per look at a row. */
export const INT8_GROUP = 4;
/** Rows a groups function scans for every group before moving on: 256 rows of 512 bytes stay in L2. */
const CACHE_ROWS = 256;

// Parameters.
export const Q = 0;
export const R = 1;
export const V = 2;
const OUT = 3;
const N = 4;
const ARG5 = 5;

/** The i32 sum of one query's accumulators, left on the stack. */
function total(accs: number[]): number[] {
  const out: number[] = [];
  for (let a = 1; a < accs.length; a++) out.push(LOCAL_GET, accs[0], LOCAL_GET, accs[a], ...I32X4_ADD, LOCAL_SET, accs[0]);
  out.push(LOCAL_GET, accs[0], ...I32X4_EXTRACT(0));
  for (let lane = 1; lane < 4; lane++) out.push(LOCAL_GET, accs[0], ...I32X4_EXTRACT(lane), I32_ADD);
  return out;
}

/** What a kernel does with one row: code that adds the row's terms into accumulators, given where things are. */
export interface RowCode {
  /** v128 locals this code uses besides the accumulators (their indices are handed to body). */
  scratch: number;
  /** Row bytes one step covers (its weights and offsets are 16 bytes a step either way). */
  rowStep: number;
  /** Accumulators per query, for this many queries at once (fewer for more: registers run out). */
  accs(queries: number): number;
  /**
   * `steps` steps of a row's code: `row` is the local holding the address of
   * their first row byte, step t's bytes at(t) bytes on (rows are stored in
   * pairs: int8-layout.ts), `r` of the first query's offsets (query k's are
   * rStride k bytes on), `v` of the weights; acc(k, j) is query k's j-th
   * accumulator (j below accs(queries)), s the scratch locals.
   */
  body(row: number, r: number, v: number, queries: number, acc: (k: number, j: number) => number, s: number[], steps: number, at: (t: number) => number): number[];
  /**
   * Optional: body() for one query over both rows of a pair at once (the odd
   * row's step t at(t) + PAIR_CHUNK bytes on), each step's offsets and
   * weights loaded once for the two; acc(k) is row k's one accumulator.
   */
  pairBody?(row: number, r: number, v: number, acc: (k: number) => number, s: number[], steps: number, at: (t: number) => number): number[];
}

/**
 * Steps per turn of the column loop. A row is a loop of a few steps, not one
 * straight run: TurboFan issues a basic block's loads first and its
 * arithmetic late, so a whole unrolled row (64 steps at H = 512) kept every
 * load live at once and spilled them to the stack (4x slower, read off
 * --print-wasm-code). A short block keeps what is live within the 16 xmm
 * registers: four steps for one query, two for four queries (measured).
 */
const stepsPerTurn = (queries: number) => (queries === 1 ? 4 : 2);

/**
 * The column loop over one row: cursors for the row's bytes, the offsets
 * and the weights start at row, r and V and advance by one turn of steps
 * until the row's end; the accumulators are left holding its sums.
 */
function columns(wb: number, code: RowCode, row: number, r: number, queries: number, acc: (k: number, j: number) => number, s: number[], cursors: [rc: number, oc: number, vc: number, end: number]): number[] {
  return columnLoop(wb, code.rowStep, stepsPerTurn(queries), row, r, cursors, (rc, oc, vc, per, at) => code.body(rc, oc, vc, queries, acc, s, per, at));
}

/** columns() for one query over both rows of a pair (code.pairBody): two steps a turn keep both rows' values and the shared offsets and weights in registers. */
function pairColumns(wb: number, code: RowCode, row: number, r: number, acc: (k: number) => number, s: number[], cursors: [rc: number, oc: number, vc: number, end: number]): number[] {
  return columnLoop(wb, code.rowStep, 2, row, r, cursors, (rc, oc, vc, per, at) => code.pairBody!(rc, oc, vc, acc, s, per, at));
}

function columnLoop(wb: number, rowStep: number, turn: number, row: number, r: number, cursors: [rc: number, oc: number, vc: number, end: number], body: (rc: number, oc: number, vc: number, per: number, at: (t: number) => number) => number[]): number[] {
  const [RC, OC, VC, END_] = cursors;
  const steps = wb / rowStep;
  let per = Math.min(turn, steps);
  // A turn covers whole PAIR_CHUNKs of the row, so the next starts where its first step's bytes are.
  while (steps % per !== 0 || (per * rowStep) % PAIR_CHUNK !== 0) per--;
  return [
    LOCAL_GET, row, LOCAL_SET, RC, LOCAL_GET, r, LOCAL_SET, OC, LOCAL_GET, V, LOCAL_SET, VC,
    // A row's bytes span 2 wb: its pair's other row fills every other chunk.
    LOCAL_GET, row, I32_CONST, ...sleb(2 * wb), I32_ADD, LOCAL_SET, END_,
    LOOP, VOID,
    ...body(RC, OC, VC, per, (t) => byteOffset(t * rowStep)),
    LOCAL_GET, RC, I32_CONST, ...sleb(byteOffset(per * rowStep)), I32_ADD, LOCAL_SET, RC,
    LOCAL_GET, OC, I32_CONST, ...sleb(per * 16), I32_ADD, LOCAL_SET, OC,
    LOCAL_GET, VC, I32_CONST, ...sleb(per * 16), I32_ADD, LOCAL_SET, VC,
    LOCAL_GET, RC, LOCAL_GET, END_, I32_LT_U, BR_IF, 0, END,
  ];
}

/**
 * Moves the row cursor in local `row` to the next row: the odd one of this
 * pair, or the next pair's even one, by the parity of `index` (code leaving
 * the row's index on the stack).
 */
function nextRow(row: number, wb: number, index: number[]): number[] {
  return [LOCAL_GET, row, I32_CONST, ...sleb(2 * wb - PAIR_CHUNK), I32_CONST, ...sleb(PAIR_CHUNK), ...index, I32_CONST, 1, I32_AND, SELECT, I32_ADD, LOCAL_SET, row];
}

const F64 = 0x7c;
const F64_LOAD = 0x2b;
const F32_LOAD = 0x2a;
const F64_PROMOTE_F32 = 0xbb;
const F64_STORE = 0x39;
const F64_CONVERT_I32_S = 0xb7;
const F64_MUL = 0xa2;
const F64_ADD = 0xa0;
const F64_MAX = 0xa5;
const F64_CONST_NEG_INF = [0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0xff];
const I32_SHR_U = 0x76;
const I32_AND = 0x71;
const I32_EQ = 0x46;
const IF = 0x04;

/**
 * The single-query function: for each of n rows, the logit t * (d + its
 * sum) + base as an f64 (t and base at the layout's affine address), and in
 * the layout's block area the largest bound of each BLOCK_ROWS rows: logit
 * plus the row's own slack (the layout's slack area, f32). `out` is where
 * the first row's logit goes in the chunk's scratch; a call starts at a
 * whole block. Written here, while each row's sum is in a register, a
 * search need not read every logit again to find its candidates; and a
 * block's largest bound, not its largest logit plus its largest slack,
 * passes only the blocks that hold a row reaching the floor (a third of
 * them at 50 000 rows).
 */
export function rowsFunction(name: string, wb: number, code: RowCode): ScanFunction {
  const layout = int8Layout(wb);
  const CURSORS: [number, number, number, number] = [6, 7, 8, 9];
  const [T, BASE, L, BM] = [10, 11, 12, 13];
  const per = code.accs(1);
  const pairs = code.pairBody !== undefined;
  const ACC = Array.from({ length: Math.max(per, pairs ? 2 : 1) }, (_, j) => 14 + j);
  const S = Array.from({ length: code.scratch }, (_, j) => 14 + ACC.length + j);
  /** Row k of this look (its sum in accs): its logit stored, the block's largest so far stored, reset past the block's last row. */
  const finish = (k: number, accs: number[]): number[] => [
    LOCAL_GET, OUT, ...total(accs), LOCAL_GET, ARG5, I32_ADD, F64_CONVERT_I32_S, LOCAL_GET, T, F64_MUL, LOCAL_GET, BASE, F64_ADD, LOCAL_TEE, L, F64_STORE, 3, ...leb(8 * k),
    // The block's largest bound so far (the logit plus the row's own slack, as a search adds them in f64), stored at
    // every row: the last store of a block holds its largest.
    LOCAL_GET, BM, LOCAL_GET, L, ...rowOfOut(layout.out - 8 * k), I32_CONST, 2, I32_SHL, F32_LOAD, 2, ...leb(layout.slack), F64_PROMOTE_F32, F64_ADD, F64_MAX, LOCAL_SET, BM,
    I32_CONST, ...sleb(layout.blocks), ...rowOfOut(layout.out - 8 * k), I32_CONST, 4, I32_SHR_U, I32_CONST, 3, I32_SHL, I32_ADD,
    LOCAL_GET, BM, F64_STORE, 3, 0,
    ...rowOfOut(layout.out - 8 * k), I32_CONST, ...sleb(BLOCK_ROWS - 1), I32_AND, I32_CONST, ...sleb(BLOCK_ROWS - 1), I32_EQ,
    IF, VOID, ...F64_CONST_NEG_INF, LOCAL_SET, BM, END,
  ];
  /** The index in this chunk of the row whose logit goes to OUT + (layout.out - from). */
  const rowOfOut = (from: number): number[] => [LOCAL_GET, OUT, I32_CONST, ...sleb(from), I32_SUB, I32_CONST, 3, I32_SHR_U];
  /** A loop over looks at a pair (`two`) or at one row, while that many rows are left. */
  const looks = (two: boolean): number[] => {
    const rows = two ? 2 : 1;
    const out: number[] = [BLOCK, VOID, LOOP, VOID];
    out.push(LOCAL_GET, N, I32_CONST, rows, I32_LT_U, BR_IF, 1);
    const used = two ? ACC.slice(0, 2) : ACC.slice(0, per);
    for (const a of used) out.push(...V128_CONST_ZERO, LOCAL_SET, a);
    if (two) {
      out.push(...pairColumns(wb, code, Q, R, (k) => ACC[k], S, CURSORS), ...finish(0, [ACC[0]]), ...finish(1, [ACC[1]]));
      out.push(LOCAL_GET, Q, I32_CONST, ...sleb(2 * wb), I32_ADD, LOCAL_SET, Q);
    } else {
      out.push(...columns(wb, code, Q, R, 1, (_, j) => ACC[j], S, CURSORS), ...finish(0, used));
      out.push(...nextRow(Q, wb, rowOfOut(layout.out)));
    }
    out.push(LOCAL_GET, OUT, I32_CONST, 8 * rows, I32_ADD, LOCAL_SET, OUT);
    out.push(LOCAL_GET, N, I32_CONST, rows, I32_SUB, LOCAL_SET, N);
    out.push(BR, 0, END, END);
    return out;
  };
  const body: number[] = [
    I32_CONST, ...sleb(layout.affine), F64_LOAD, 3, 0, LOCAL_SET, T,
    I32_CONST, ...sleb(layout.affine), F64_LOAD, 3, 8, LOCAL_SET, BASE,
    ...F64_CONST_NEG_INF, LOCAL_SET, BM,
  ];
  // Whole pairs first, then a last row alone (a call's rows start a block, so an even row; its last may end mid-block).
  if (pairs) body.push(...looks(true));
  body.push(...looks(false), END);
  return { name, locals: [3, 4, 0x7f, 4, F64, ...leb(ACC.length + code.scratch), 0x7b], body };
}

/** The batch function: INT8_GROUP queries per look at a row, `groups` groups, blocks of rows kept in cache. */
export function groupsFunction(name: string, wb: number, rStride: number, code: RowCode): ScanFunction {
  const NS = 6; // bytes between two groups' outputs: 16 n
  const NB = 7; // rows in this block
  const G = 8; // groups left
  const RG = 9; // this group's first r
  const OG = 10; // this group's first output in the block
  const QI = 11; // this row
  const OI = 12; // this row's output
  const I = 13; // rows left in the block
  const CURSORS: [number, number, number, number] = [14, 15, 16, 17];
  const per = code.accs(INT8_GROUP);
  const ACC = Array.from({ length: INT8_GROUP * per }, (_, j) => 18 + j);
  const S = Array.from({ length: code.scratch }, (_, j) => 18 + ACC.length + j);
  const acc = (k: number, j: number) => ACC[k * per + j];
  const body: number[] = [];
  body.push(LOCAL_GET, N, I32_CONST, 4, I32_SHL, LOCAL_SET, NS);
  body.push(BLOCK, VOID, LOOP, VOID); // blocks of rows
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  // NB = N < CACHE_ROWS ? N : CACHE_ROWS
  body.push(LOCAL_GET, N, I32_CONST, ...sleb(CACHE_ROWS), LOCAL_GET, N, I32_CONST, ...sleb(CACHE_ROWS), I32_LT_U, SELECT, LOCAL_SET, NB);
  body.push(LOCAL_GET, ARG5, LOCAL_SET, G, LOCAL_GET, R, LOCAL_SET, RG, LOCAL_GET, OUT, LOCAL_SET, OG);
  body.push(LOOP, VOID); // groups
  body.push(LOCAL_GET, Q, LOCAL_SET, QI, LOCAL_GET, OG, LOCAL_SET, OI, LOCAL_GET, NB, LOCAL_SET, I);
  body.push(LOOP, VOID); // rows of the block
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  body.push(...columns(wb, code, QI, RG, INT8_GROUP, acc, S, CURSORS));
  for (let k = 0; k < INT8_GROUP; k++) body.push(LOCAL_GET, OI, ...total(ACC.slice(k * per, (k + 1) * per)), I32_STORE, 2, ...leb(4 * k));
  // A block starts at an even row: this row's index in it is its output's (16 bytes a row).
  body.push(...nextRow(QI, wb, [LOCAL_GET, OI, LOCAL_GET, OG, I32_SUB, I32_CONST, 4, I32_SHR_U]));
  body.push(LOCAL_GET, OI, I32_CONST, 16, I32_ADD, LOCAL_SET, OI);
  body.push(LOCAL_GET, I, I32_CONST, 1, I32_SUB, LOCAL_TEE, I, BR_IF, 0, END);
  body.push(LOCAL_GET, RG, I32_CONST, ...sleb(INT8_GROUP * rStride), I32_ADD, LOCAL_SET, RG);
  body.push(LOCAL_GET, OG, LOCAL_GET, NS, I32_ADD, LOCAL_SET, OG);
  body.push(LOCAL_GET, G, I32_CONST, 1, I32_SUB, LOCAL_TEE, G, BR_IF, 0, END);
  // The next block: its rows, its outputs, fewer rows left.
  body.push(LOCAL_GET, Q, LOCAL_GET, NB, I32_CONST, ...sleb(wb), I32_MUL, I32_ADD, LOCAL_SET, Q);
  body.push(LOCAL_GET, OUT, LOCAL_GET, NB, I32_CONST, 4, I32_SHL, I32_ADD, LOCAL_SET, OUT);
  body.push(LOCAL_GET, N, LOCAL_GET, NB, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  return { name, locals: [2, 12, 0x7f, ...leb(ACC.length + code.scratch), 0x7b], body };
}

/** One compiled module per row width, built on first use. */
export function perWidth(build: (wb: number) => ScanFunction[]): (wb: number) => WebAssembly.Module {
  const compiled = new Map<number, WebAssembly.Module>();
  return (wb) => {
    if (wb <= 0 || wb % 16 !== 0) throw new RangeError(`int8 row width must be a positive multiple of 16 bytes, got ${wb}`);
    let m = compiled.get(wb);
    if (!m) {
      m = new WebAssembly.Module(scanModuleOf(build(wb)));
      compiled.set(wb, m);
    }
    return m;
  };
}
