/**
 * The int8 scan's WebAssembly functions, emitted byte by byte as
 * wasm-module.ts emits the float32 one, for one row width wb (bytes, a
 * multiple of 16) fixed when the module is built:
 *
 *   score8(q, c, v, out, n, d): for each of n rows of int8 at q,
 *     out[i] = d + sum_j v_j * max(q_ij, c_j)      (i32, wrapping)
 *   many8(q, c, v, out, n, groups): the sums for 4 x groups queries at once
 *     (their c vectors side by side from c; no d), writing 4 sums per row
 *     and group: out + 16 (g n + i) holds queries 4g .. 4g + 3 of row i.
 *
 * relu(q + r) = max(q, -r) + r, so a query's sum over its relu terms is a
 * sum of maxima against c = -r plus one constant (int8-kernel.ts folds the
 * columns where -r leaves q's range). Eight columns per step: i16x8.load8x8_s
 * widens the row's bytes, i16x8.max_s takes the maximum, and
 * i32x4.dot_i16x8_s multiplies by the head's weights and sums pairs into i32
 * lanes. Only SIMD that Node 20 runs without flags.
 *
 * On this job the scan is bound by these instructions, not by memory (a row
 * is a quarter of the float32 one's bytes), so the loop over a row's columns
 * is unrolled with every offset an immediate: no address arithmetic, no loop
 * counter, four vector instructions per 8 columns (widen, max, dot,
 * accumulate). many8 widens each row's bytes and loads the weights once for
 * four queries, and scans a block of rows for every group of four while the
 * block sits in cache. i32 sums wrap: a total that fits an i32 comes out
 * exact whatever its parts did.
 */
import {
  BLOCK, BR, BR_IF, END, I32_ADD, I32_CONST, I32_EQZ, I32_LT_U, I32_SUB, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP, SIMD,
  V128_CONST_ZERO, V128_LOAD, VOID, leb, nextRow, scanModuleOf, sleb,
} from './wasm-encoding.js';

const I32_STORE = 0x36;
const I32_SHL = 0x74;
const SELECT = 0x1b;
const V128_LOAD8X8_S = [SIMD, 0x01];
const I16X8_MAX_S = [SIMD, ...leb(0x98)];
const I32X4_DOT_I16X8_S = [SIMD, ...leb(0xba)];
const I32X4_ADD = [SIMD, ...leb(0xae)];
const I32X4_EXTRACT = (lane: number) => [SIMD, ...leb(0x1b), lane];

/** Queries many8 scores per pass over a row. */
export const INT8_GROUP = 4;
/** Rows many8 scans for every group before moving on: 256 rows of 512 bytes stay in L2. */
const BLOCK_ROWS = 256;

// score8 / many8 parameters.
const Q = 0;
const R = 1;
const V = 2;
const OUT = 3;
const N = 4;
const GROUPS = 5;

/** The i32 sum of an i32x4 local, left on the stack. */
function horizontalSum(acc: number): number[] {
  const out = [LOCAL_GET, acc, ...I32X4_EXTRACT(0)];
  for (let lane = 1; lane < 4; lane++) out.push(LOCAL_GET, acc, ...I32X4_EXTRACT(lane), I32_ADD);
  return out;
}

/** acc += dot(max(x, load(cBase + cOffset)), vv), with x and vv in locals. */
function step(acc: number, x: number, cBase: number, cOffset: number, vv: number): number[] {
  return [
    LOCAL_GET, acc, LOCAL_GET, x, LOCAL_GET, cBase, ...V128_LOAD, 4, ...leb(cOffset),
    ...I16X8_MAX_S, LOCAL_GET, vv, ...I32X4_DOT_I16X8_S, ...I32X4_ADD, LOCAL_SET, acc,
  ];
}

function score8(wb: number): { name: string; locals: number[]; body: number[] } {
  const D = GROUPS;
  const WB = 6; // nextRow steps by the row width held in a local
  const ACC = [7, 8];
  const X = 9;
  const VV = 10;
  const body: number[] = [I32_CONST, ...sleb(wb), LOCAL_SET, WB];
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  for (let s = 0; s < wb / 16; s++) {
    for (let h = 0; h < 2; h++) {
      body.push(LOCAL_GET, Q, ...V128_LOAD8X8_S, 3, ...leb(16 * s + 8 * h), LOCAL_SET, X);
      body.push(LOCAL_GET, V, ...V128_LOAD, 4, ...leb(32 * s + 16 * h), LOCAL_SET, VV);
      body.push(...step(ACC[h], X, R, 32 * s + 16 * h, VV));
    }
  }
  body.push(LOCAL_GET, ACC[0], LOCAL_GET, ACC[1], ...I32X4_ADD, LOCAL_SET, ACC[0]);
  body.push(LOCAL_GET, OUT, ...horizontalSum(ACC[0]), LOCAL_GET, D, I32_ADD, I32_STORE, 2, 0);
  body.push(...nextRow(Q, WB, OUT, N));
  return { name: 'score8', locals: [2, 1, 0x7f, 4, 0x7b], body }; // the width; two accumulators, X and VV
}

function many8(wb: number): { name: string; locals: number[]; body: number[] } {
  // i32 locals
  const NS = 6; // bytes between two groups' outputs: 16 n
  const NB = 7; // rows in this block
  const G = 8; // groups left
  const RG = 9; // this group's first r
  const OG = 10; // this group's first output in the block
  const QI = 11; // this row
  const OI = 12; // this row's output
  const I = 13; // rows left in the block
  // v128 locals
  const ACC = [14, 15, 16, 17];
  const X = 18;
  const VV = 19;
  const rBytes = wb * 2;
  const body: number[] = [];
  body.push(LOCAL_GET, N, I32_CONST, 4, I32_SHL, LOCAL_SET, NS);
  body.push(BLOCK, VOID, LOOP, VOID); // blocks of rows
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  // NB = N < BLOCK_ROWS ? N : BLOCK_ROWS
  body.push(LOCAL_GET, N, I32_CONST, ...sleb(BLOCK_ROWS), LOCAL_GET, N, I32_CONST, ...sleb(BLOCK_ROWS), I32_LT_U, SELECT, LOCAL_SET, NB);
  body.push(LOCAL_GET, GROUPS, LOCAL_SET, G, LOCAL_GET, R, LOCAL_SET, RG, LOCAL_GET, OUT, LOCAL_SET, OG);
  body.push(LOOP, VOID); // groups
  body.push(LOCAL_GET, Q, LOCAL_SET, QI, LOCAL_GET, OG, LOCAL_SET, OI, LOCAL_GET, NB, LOCAL_SET, I);
  body.push(LOOP, VOID); // rows of the block
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  for (let s = 0; s < wb / 16; s++) {
    for (let h = 0; h < 2; h++) {
      body.push(LOCAL_GET, QI, ...V128_LOAD8X8_S, 3, ...leb(16 * s + 8 * h), LOCAL_SET, X);
      body.push(LOCAL_GET, V, ...V128_LOAD, 4, ...leb(32 * s + 16 * h), LOCAL_SET, VV);
      for (let k = 0; k < INT8_GROUP; k++) body.push(...step(ACC[k], X, RG, k * rBytes + 32 * s + 16 * h, VV));
    }
  }
  for (let k = 0; k < INT8_GROUP; k++) body.push(LOCAL_GET, OI, ...horizontalSum(ACC[k]), I32_STORE, 2, ...leb(4 * k));
  body.push(LOCAL_GET, QI, I32_CONST, ...sleb(wb), I32_ADD, LOCAL_SET, QI);
  body.push(LOCAL_GET, OI, I32_CONST, 16, I32_ADD, LOCAL_SET, OI);
  body.push(LOCAL_GET, I, I32_CONST, 1, I32_SUB, LOCAL_TEE, I, BR_IF, 0, END);
  body.push(LOCAL_GET, RG, I32_CONST, ...sleb(INT8_GROUP * rBytes), I32_ADD, LOCAL_SET, RG);
  body.push(LOCAL_GET, OG, LOCAL_GET, NS, I32_ADD, LOCAL_SET, OG);
  body.push(LOCAL_GET, G, I32_CONST, 1, I32_SUB, LOCAL_TEE, G, BR_IF, 0, END);
  // The next block: its rows, its outputs, fewer rows left.
  body.push(LOCAL_GET, Q, LOCAL_GET, NB, I32_CONST, ...sleb(wb), 0x6c /* i32.mul */, I32_ADD, LOCAL_SET, Q);
  body.push(LOCAL_GET, OUT, LOCAL_GET, NB, I32_CONST, 4, I32_SHL, I32_ADD, LOCAL_SET, OUT);
  body.push(LOCAL_GET, N, LOCAL_GET, NB, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  return { name: 'many8', locals: [2, 8, 0x7f, 6, 0x7b], body };
}

const compiled = new Map<number, WebAssembly.Module>();

/** The compiled int8 module for rows of wb bytes (once per width and process). */
export function int8Module(wb: number): WebAssembly.Module {
  if (wb <= 0 || wb % 16 !== 0) throw new RangeError(`int8 row width must be a positive multiple of 16 bytes, got ${wb}`);
  let m = compiled.get(wb);
  if (!m) {
    m = new WebAssembly.Module(scanModuleOf([score8(wb), many8(wb)]));
    compiled.set(wb, m);
  }
  return m;
}
