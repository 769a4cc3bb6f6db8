/**
 * The int8 scan on relaxed SIMD, for runtimes that have it (Node 22; Node 20
 * behind --experimental-wasm-relaxed-simd). Rows hold 7-bit values q in
 * [-64, 63] and a query's offsets r lie in [-64, 64], so q + r fits an i8
 * exactly (no saturation), the relu lies in [0, 127] and is a valid 7-bit
 * operand of i32x4.relaxed_dot_i8x16_i7x16_add_s, which multiplies it by the
 * int8 weights v and adds groups of four into the accumulator: one
 * instruction (vpdpbusd with VNNI) for sixteen columns, where the simd128
 * kernel (int8-module.ts) needs eight. Its result is exact for such
 * operands, whatever the hardware.
 *
 *   score7(q, r, v, out, n, _): out[i] = sum_j v_j * max(0, q_ij + r_j)
 *   many7(q, r, v, out, n, groups): as many8, four queries per look at a row
 *
 * r and v are int8 here (wb bytes each; the simd128 kernel keeps them int16).
 */
import {
  BLOCK, BR, BR_IF, END, I32_ADD, I32_CONST, I32_EQZ, I32_LT_U, I32_SUB, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP, SIMD,
  V128_CONST_ZERO, V128_LOAD, VOID, leb, nextRow, scanModuleOf, sleb, type ScanFunction,
} from './wasm-encoding.js';
import { INT8_GROUP } from './int8-module.js';

const I32_STORE = 0x36;
const I32_SHL = 0x74;
const I32_MUL = 0x6c;
const SELECT = 0x1b;
const I8X16_ADD_SAT_S = [SIMD, ...leb(0x6f)];
const I8X16_MAX_S = [SIMD, ...leb(0x78)];
const I32X4_ADD = [SIMD, ...leb(0xae)];
const I32X4_EXTRACT = (lane: number) => [SIMD, ...leb(0x1b), lane];
const I32X4_RELAXED_DOT_I8X16_I7X16_ADD_S = [SIMD, ...leb(0x113)];

const BLOCK_ROWS = 256;
/** Accumulators per query: the dot-add's latency (about 5 cycles) is hidden behind the others. */
const ACCS = 4;

const Q = 0;
const R = 1;
const V = 2;
const OUT = 3;
const N = 4;
const GROUPS = 5;

function horizontalSum(acc: number): number[] {
  const out = [LOCAL_GET, acc, ...I32X4_EXTRACT(0)];
  for (let lane = 1; lane < 4; lane++) out.push(LOCAL_GET, acc, ...I32X4_EXTRACT(lane), I32_ADD);
  return out;
}

/** acc = dot(vv, max(0, x + load(rBase + rOffset))) + acc. */
function step(acc: number, x: number, rBase: number, rOffset: number, vv: number): number[] {
  return [
    LOCAL_GET, vv, ...V128_CONST_ZERO, LOCAL_GET, x, LOCAL_GET, rBase, ...V128_LOAD, 4, ...leb(rOffset), ...I8X16_ADD_SAT_S, ...I8X16_MAX_S,
    LOCAL_GET, acc, ...I32X4_RELAXED_DOT_I8X16_I7X16_ADD_S, LOCAL_SET, acc,
  ];
}

/** Sums the accumulators of one query into the first, leaving its total on the stack. */
function total(accs: number[]): number[] {
  const out: number[] = [];
  for (let a = 1; a < accs.length; a++) out.push(LOCAL_GET, accs[0], LOCAL_GET, accs[a], ...I32X4_ADD, LOCAL_SET, accs[0]);
  return [...out, ...horizontalSum(accs[0])];
}

function score7(wb: number): ScanFunction {
  const ACC = [6, 7, 8, 9];
  const X = 10;
  const VV = 11;
  const body: number[] = [I32_CONST, ...sleb(wb), LOCAL_SET, GROUPS];
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  for (let s = 0; s < wb / 16; s++) {
    body.push(LOCAL_GET, Q, ...V128_LOAD, 4, ...leb(16 * s), LOCAL_SET, X);
    body.push(LOCAL_GET, V, ...V128_LOAD, 4, ...leb(16 * s), LOCAL_SET, VV);
    body.push(...step(ACC[s % ACCS], X, R, 16 * s, VV));
  }
  body.push(LOCAL_GET, OUT, ...total(ACC), I32_STORE, 2, 0);
  body.push(...nextRow(Q, GROUPS, OUT, N));
  return { name: 'score7', locals: [1, 6, 0x7b], body };
}

function many7(wb: number): ScanFunction {
  const NS = 6;
  const NB = 7;
  const G = 8;
  const RG = 9;
  const OG = 10;
  const QI = 11;
  const OI = 12;
  const I = 13;
  // Two accumulators per query here: four queries already interleave their chains.
  const PER = 2;
  const ACC = Array.from({ length: INT8_GROUP * PER }, (_, i) => 14 + i);
  const X = 14 + INT8_GROUP * PER;
  const VV = X + 1;
  const body: number[] = [];
  body.push(LOCAL_GET, N, I32_CONST, 4, I32_SHL, LOCAL_SET, NS);
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  body.push(LOCAL_GET, N, I32_CONST, ...sleb(BLOCK_ROWS), LOCAL_GET, N, I32_CONST, ...sleb(BLOCK_ROWS), I32_LT_U, SELECT, LOCAL_SET, NB);
  body.push(LOCAL_GET, GROUPS, LOCAL_SET, G, LOCAL_GET, R, LOCAL_SET, RG, LOCAL_GET, OUT, LOCAL_SET, OG);
  body.push(LOOP, VOID);
  body.push(LOCAL_GET, Q, LOCAL_SET, QI, LOCAL_GET, OG, LOCAL_SET, OI, LOCAL_GET, NB, LOCAL_SET, I);
  body.push(LOOP, VOID);
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  for (let s = 0; s < wb / 16; s++) {
    body.push(LOCAL_GET, QI, ...V128_LOAD, 4, ...leb(16 * s), LOCAL_SET, X);
    body.push(LOCAL_GET, V, ...V128_LOAD, 4, ...leb(16 * s), LOCAL_SET, VV);
    for (let k = 0; k < INT8_GROUP; k++) body.push(...step(ACC[k * PER + (s % PER)], X, RG, k * wb + 16 * s, VV));
  }
  for (let k = 0; k < INT8_GROUP; k++) body.push(LOCAL_GET, OI, ...total(ACC.slice(k * PER, (k + 1) * PER)), I32_STORE, 2, ...leb(4 * k));
  body.push(LOCAL_GET, QI, I32_CONST, ...sleb(wb), I32_ADD, LOCAL_SET, QI);
  body.push(LOCAL_GET, OI, I32_CONST, 16, I32_ADD, LOCAL_SET, OI);
  body.push(LOCAL_GET, I, I32_CONST, 1, I32_SUB, LOCAL_TEE, I, BR_IF, 0, END);
  body.push(LOCAL_GET, RG, I32_CONST, ...sleb(INT8_GROUP * wb), I32_ADD, LOCAL_SET, RG);
  body.push(LOCAL_GET, OG, LOCAL_GET, NS, I32_ADD, LOCAL_SET, OG);
  body.push(LOCAL_GET, G, I32_CONST, 1, I32_SUB, LOCAL_TEE, G, BR_IF, 0, END);
  body.push(LOCAL_GET, Q, LOCAL_GET, NB, I32_CONST, ...sleb(wb), I32_MUL, I32_ADD, LOCAL_SET, Q);
  body.push(LOCAL_GET, OUT, LOCAL_GET, NB, I32_CONST, 4, I32_SHL, I32_ADD, LOCAL_SET, OUT);
  body.push(LOCAL_GET, N, LOCAL_GET, NB, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  return { name: 'many7', locals: [2, 8, 0x7f, ...leb(INT8_GROUP * PER + 2), 0x7b], body };
}

const compiled = new Map<number, WebAssembly.Module>();

/** The relaxed-SIMD module for rows of wb bytes; only where relaxedSimd() says the runtime has it. */
export function relaxedModule(wb: number): WebAssembly.Module {
  if (wb <= 0 || wb % 16 !== 0) throw new RangeError(`int8 row width must be a positive multiple of 16 bytes, got ${wb}`);
  let m = compiled.get(wb);
  if (!m) {
    m = new WebAssembly.Module(scanModuleOf([score7(wb), many7(wb)]));
    compiled.set(wb, m);
  }
  return m;
}

/** Whether this runtime compiles relaxed SIMD (checked on the dot instruction itself, each call: a flag may have been turned on since). */
export function relaxedSimd(): boolean {
  try {
    new WebAssembly.Module(scanModuleOf([score7(16)]));
    return true;
  } catch {
    return false;
  }
}
