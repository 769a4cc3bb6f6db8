/**
 * The float32 scan's WebAssembly function, emitted byte by byte (with the
 * query projection's dot beside it):
 *   score(p, u, w, out, n, hb): for each of n rows at p (hb bytes apart),
 *     out[i] = w · relu(P_i + u)
 * in SIMD (f32x4, four accumulators so adds don't wait on each other). Plain
 * JS runs this loop at ~14 ns per element on V8 (the float32 round trips and
 * the relu branch defeat its optimiser); the wasm loop is memory-bound
 * instead, which is the best a scan over N x H floats can do.
 *
 * It is one small function: a wat compiler dependency or a build step would
 * cost more than it saves, so the encoder below is kept, written as the
 * instruction list it is (one line per step of the loop).
 */

import {
  BLOCK, BR_IF, END, I32_ADD, I32_CONST, I32_EQZ, I32_LT_U, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP, SIMD,
  V128_CONST_ZERO, V128_LOAD, VOID, F32X4_ADD, F32X4_MUL, leb, nextRow, scanModuleOf, sleb, storeSum,
} from './wasm-encoding.js';
import { dotFunction } from './dot-function.js';

export { MAX_PAGES, PAGE } from './wasm-encoding.js';

const F32X4_PMAX = [SIMD, ...leb(0xeb)];

// Parameters and locals.
const P = 0;
const U = 1;
const W = 2;
const OUT = 3;
const N = 4;
const HB = 5; // row width in bytes, a multiple of 64
const J = 6;
const ACC = [7, 8, 9, 10];

function load(base: number, offset: number): number[] {
  return [LOCAL_GET, base, LOCAL_GET, J, I32_ADD, ...V128_LOAD, 4, ...leb(offset)];
}

function buildModule(): Uint8Array {
  const body: number[] = [];
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  body.push(I32_CONST, 0, LOCAL_SET, J);
  body.push(LOOP, VOID);
  for (let k = 0; k < 4; k++) {
    // acc_k += pmax(0, P + u) * w   (pmax(0, v) = 0 < v ? v : 0 = relu(v))
    body.push(LOCAL_GET, ACC[k], ...V128_CONST_ZERO, ...load(P, 16 * k), ...load(U, 16 * k), ...F32X4_ADD, ...F32X4_PMAX);
    body.push(...load(W, 16 * k), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, ACC[k]);
  }
  body.push(LOCAL_GET, J, I32_CONST, ...sleb(64), I32_ADD, LOCAL_TEE, J, LOCAL_GET, HB, I32_LT_U, BR_IF, 0, END);
  body.push(LOCAL_GET, OUT, ...storeSum(ACC));
  body.push(...nextRow(P, HB, OUT, N));
  // One i32, four v128; the query projection's dot (dot-function.ts) rides along for the same threads.
  return scanModuleOf([{ name: 'score', locals: [2, 1, 0x7f, 4, 0x7b], body }, dotFunction()]);
}

/** The functions of scanModule() a ScanPool runs, by index. */
export const SCAN_FUNCTIONS = ['score', 'dot'];

let compiled: WebAssembly.Module | undefined;

/** The compiled module (once per process; every kernel and helper thread instantiates it). */
export function scanModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(buildModule());
  return compiled;
}

/** Rounds H up so every row is a whole number of 4 x f32x4 steps; the padding carries w = 0. */
export function paddedWidth(hidden: number): number {
  return Math.ceil(hidden / 16) * 16;
}
