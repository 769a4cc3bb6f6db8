/**
 * The int8 scan on relaxed SIMD, for runtimes that have it (Node 22; Node 20
 * behind --experimental-wasm-relaxed-simd). Rows hold 7-bit values q in
 * [-64, 63] and a query's offsets r lie in [-64, 64], so q + r fits an i8
 * exactly (no saturation), the relu lies in [0, 127] and is a valid 7-bit
 * operand of i16x8.relaxed_dot_i8x16_i7x16_s, which multiplies it by the
 * int8 weights v and adds pairs (at most 2 x 127 x 127, so no i16 saturates);
 * i32x4.extadd_pairwise_i16x8_s and an add take them into the accumulator.
 * Its result is exact for such operands, whatever the hardware.
 *
 * Not the fused i32x4.relaxed_dot_i8x16_i7x16_add_s, one instruction where
 * this is three: V8 11.3 (Node 20) compiles it wrong. Alone in a function it
 * returns twice the dot and drops the accumulator (measured on an AVX-VNNI
 * host); in the loop its sums were off by other amounts.
 *
 *   score7(q, r, v, out, n, d): the sum d + sum_j v_j * max(0, q_ij + r_j),
 *     written as score8 writes its sums
 *   many7(q, r, v, out, n, groups): as many8, four queries per look at a row
 *
 * r and v are int8 here (wb bytes each; the simd128 kernel keeps them int16).
 */
import { dotFunction } from './dot-function.js';
import { LOCAL_GET, LOCAL_SET, SIMD, V128_CONST_ZERO, V128_LOAD, leb, scanModuleOf } from './wasm-encoding.js';
import { groupsFunction, perWidth, rowsFunction, type RowCode } from './int8-loops.js';

const I8X16_ADD_SAT_S = [SIMD, ...leb(0x6f)];
const I8X16_MAX_S = [SIMD, ...leb(0x78)];
const I16X8_RELAXED_DOT_I8X16_I7X16_S = [SIMD, ...leb(0x112)];
const I32X4_EXTADD_PAIRWISE_I16X8_S = [SIMD, ...leb(0x7e)];
const I32X4_ADD = [SIMD, ...leb(0xae)];

/** Sixteen columns a step: acc = dot(v, max(0, q + r)) + acc, over the query's accumulators in turn. */
function code(wb: number): RowCode {
  return {
    rowStep: 16,
    // The dot-add's latency (about 5 cycles) wants four chains for one query; four queries interleave theirs.
    accs: (queries) => (queries === 1 ? 4 : 2),
    scratch: 2,
    body(row, r, v, queries, acc, [X, VV], steps, at) {
      const chains = queries === 1 ? 4 : 2;
      const out: number[] = [];
      for (let t = 0; t < steps; t++) {
        out.push(LOCAL_GET, row, ...V128_LOAD, 4, ...leb(at(t)), LOCAL_SET, X);
        out.push(LOCAL_GET, v, ...V128_LOAD, 4, ...leb(16 * t), LOCAL_SET, VV);
        for (let k = 0; k < queries; k++) {
          out.push(LOCAL_GET, VV, ...V128_CONST_ZERO, LOCAL_GET, X, LOCAL_GET, r, ...V128_LOAD, 4, ...leb(k * wb + 16 * t), ...I8X16_ADD_SAT_S, ...I8X16_MAX_S);
          out.push(...I16X8_RELAXED_DOT_I8X16_I7X16_S, ...I32X4_EXTADD_PAIRWISE_I16X8_S, LOCAL_GET, acc(k, t % chains), ...I32X4_ADD, LOCAL_SET, acc(k, t % chains));
        }
      }
      return out;
    },
  };
}

/** The relaxed-SIMD module for rows of wb bytes; only where relaxedSimd() says the runtime has it. */
export const relaxedModule = perWidth((wb) => [rowsFunction('score7', wb, code(wb)), groupsFunction('many7', wb, wb, code(wb)), dotFunction()]);

/** Whether this runtime compiles relaxed SIMD (checked on the dot instruction itself, each call: a flag may have been turned on since). */
export function relaxedSimd(): boolean {
  try {
    new WebAssembly.Module(scanModuleOf([rowsFunction('score7', 16, code(16))]));
    return true;
  } catch {
    return false;
  }
}
