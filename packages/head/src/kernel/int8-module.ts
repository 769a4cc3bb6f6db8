/**
 * The int8 scan's one WebAssembly function, emitted byte by byte as
 * wasm-module.ts emits the float32 one:
 *   score8(q, r, v, out, n, wb): for each of n rows of int8 at q (wb bytes
 *     apart, wb a multiple of 16),
 *     out[i] = sum_j v_j * max(0, q_ij +sat r_j)      (an i32)
 * with r and v int16 vectors of wb lanes. Sixteen columns per step: two
 * i16x8.load8x8_s widen the row's bytes, i16x8.add_sat_s adds the query's
 * offsets, i16x8.max_s is the relu, and i32x4.dot_i16x8_s multiplies by the
 * head's weights and sums pairs into i32 lanes. Only SIMD that Node 20 runs
 * without flags. A row is a quarter of the float32 one's bytes, which is
 * what the scan is bound by.
 */
import {
  BLOCK, BR_IF, END, I32_ADD, I32_CONST, I32_EQZ, I32_LT_U, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP, SIMD,
  V128_CONST_ZERO, V128_LOAD, VOID, leb, nextRow, scanModuleBytes,
} from './wasm-encoding.js';

const I32_STORE = 0x36;
const V128_LOAD8X8_S = [SIMD, 0x01];
const I16X8_ADD_SAT_S = [SIMD, ...leb(0x8f)];
const I16X8_MAX_S = [SIMD, ...leb(0x98)];
const I32X4_DOT_I16X8_S = [SIMD, ...leb(0xba)];
const I32X4_ADD = [SIMD, ...leb(0xae)];
const I32X4_EXTRACT = (lane: number) => [SIMD, ...leb(0x1b), lane];

// Parameters and locals.
const Q = 0;
const R = 1;
const V = 2;
const OUT = 3;
const N = 4;
const WB = 5; // row width in bytes (= columns), a multiple of 16
const J = 6; // byte offset into the row
const J2 = 7; // the same column's byte offset into r and v (2 x J)
const ACC = [8, 9];

function buildModule(): Uint8Array {
  const body: number[] = [];
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  body.push(I32_CONST, 0, LOCAL_SET, J, I32_CONST, 0, LOCAL_SET, J2);
  body.push(LOOP, VOID);
  for (let half = 0; half < 2; half++) {
    // acc_h += dot(max(0, widen(q[j + 8h .. +8]) +sat r[..]), v[..])
    body.push(LOCAL_GET, ACC[half]);
    body.push(...V128_CONST_ZERO);
    body.push(LOCAL_GET, Q, LOCAL_GET, J, I32_ADD, ...V128_LOAD8X8_S, 3, ...leb(8 * half));
    body.push(LOCAL_GET, R, LOCAL_GET, J2, I32_ADD, ...V128_LOAD, 4, ...leb(16 * half));
    body.push(...I16X8_ADD_SAT_S, ...I16X8_MAX_S);
    body.push(LOCAL_GET, V, LOCAL_GET, J2, I32_ADD, ...V128_LOAD, 4, ...leb(16 * half));
    body.push(...I32X4_DOT_I16X8_S, ...I32X4_ADD, LOCAL_SET, ACC[half]);
  }
  body.push(LOCAL_GET, J2, I32_CONST, 32, I32_ADD, LOCAL_SET, J2);
  body.push(LOCAL_GET, J, I32_CONST, 16, I32_ADD, LOCAL_TEE, J, LOCAL_GET, WB, I32_LT_U, BR_IF, 0, END);
  body.push(LOCAL_GET, OUT);
  body.push(LOCAL_GET, ACC[0], LOCAL_GET, ACC[1], ...I32X4_ADD, LOCAL_TEE, ACC[0], ...I32X4_EXTRACT(0));
  for (let lane = 1; lane < 4; lane++) body.push(LOCAL_GET, ACC[0], ...I32X4_EXTRACT(lane), I32_ADD);
  body.push(I32_STORE, 2, 0);
  body.push(...nextRow(Q, WB, OUT, N));
  return scanModuleBytes('score8', [2, 2, 0x7f, 2, 0x7b], body); // two i32, two v128
}

let compiled: WebAssembly.Module | undefined;

/** The compiled int8 module (once per process). */
export function int8Module(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(buildModule());
  return compiled;
}
