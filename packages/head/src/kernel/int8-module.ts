/**
 * The int8 scan on simd128, emitted byte by byte as wasm-module.ts emits the
 * float32 one, for one row width wb (bytes, a multiple of 16) fixed when the
 * module is built (the loops are int8-loops.ts'):
 *
 *   score8(q, c, v, out, n, d): for each of n rows of int8 at q, the sum
 *     d + sum_j v_j * max(q_ij, c_j) (i32, wrapping), written as the f64
 *     logit t * sum + base with each block's largest (int8-loops.ts)
 *   many8(q, c, v, out, n, groups): the sums for 4 x groups queries at once
 *     (their c vectors side by side from c; no d).
 *
 * relu(q + r) = max(q, -r) + r, so a query's sum over its relu terms is a
 * sum of maxima against c = -r plus one constant (int8-kernel.ts folds the
 * columns where -r leaves q's range). Eight columns per step: i16x8.load8x8_s
 * widens the row's bytes, i16x8.max_s takes the maximum, and
 * i32x4.dot_i16x8_s multiplies by the head's weights (int16) and sums pairs
 * into i32 lanes. Only SIMD that Node 20 runs without flags.
 *
 * On this job the scan is bound by these instructions, not by memory (a row
 * is a quarter of the float32 one's bytes), so a row's columns are unrolled
 * with every offset an immediate: no address arithmetic, no loop counter,
 * four vector instructions per 8 columns (widen, max, dot, accumulate).
 * many8 widens each row's bytes and loads the weights once for four
 * queries. i32 sums wrap: a total that fits an i32 comes out exact whatever
 * its parts did.
 */
import { SIMD, V128_LOAD, leb, LOCAL_GET, LOCAL_SET } from './wasm-encoding.js';
import { groupsFunction, perWidth, rowsFunction, type RowCode } from './int8-loops.js';
import { PAIR_CHUNK } from './int8-layout.js';
import { dotFunction } from './dot-function.js';

export { INT8_GROUP } from './int8-loops.js';

const V128_LOAD8X8_S = [SIMD, 0x01];
const I16X8_MAX_S = [SIMD, ...leb(0x98)];
const I32X4_DOT_I16X8_S = [SIMD, ...leb(0xba)];
const I32X4_ADD = [SIMD, ...leb(0xae)];

/** Eight columns a step: the row's bytes widened once, then for each query acc += dot(max(x, c), v). */
function code(wb: number): RowCode {
  return {
    rowStep: 8,
    // Two chains for one query hide the add's latency; four queries interleave theirs already.
    accs: (queries) => (queries === 1 ? 2 : 1),
    scratch: 2,
    body(row, c, v, queries, acc, [X, VV], steps, at) {
      const chains = queries === 1 ? 2 : 1;
      const out: number[] = [];
      for (let t = 0; t < steps; t++) {
        out.push(LOCAL_GET, row, ...V128_LOAD8X8_S, 3, ...leb(at(t)), LOCAL_SET, X);
        out.push(LOCAL_GET, v, ...V128_LOAD, 4, ...leb(16 * t), LOCAL_SET, VV);
        for (let k = 0; k < queries; k++) {
          out.push(LOCAL_GET, acc(k, t % chains), LOCAL_GET, X, LOCAL_GET, c, ...V128_LOAD, 4, ...leb(k * 2 * wb + 16 * t));
          out.push(...I16X8_MAX_S, LOCAL_GET, VV, ...I32X4_DOT_I16X8_S, ...I32X4_ADD, LOCAL_SET, acc(k, t % chains));
        }
      }
      return out;
    },
    pairBody(row, c, v, acc, [CC, VV], steps, at) {
      const out: number[] = [];
      for (let t = 0; t < steps; t++) {
        out.push(LOCAL_GET, c, ...V128_LOAD, 4, ...leb(16 * t), LOCAL_SET, CC);
        out.push(LOCAL_GET, v, ...V128_LOAD, 4, ...leb(16 * t), LOCAL_SET, VV);
        for (let k = 0; k < 2; k++) {
          out.push(LOCAL_GET, acc(k), LOCAL_GET, row, ...V128_LOAD8X8_S, 3, ...leb(at(t) + k * PAIR_CHUNK), LOCAL_GET, CC);
          out.push(...I16X8_MAX_S, LOCAL_GET, VV, ...I32X4_DOT_I16X8_S, ...I32X4_ADD, LOCAL_SET, acc(k));
        }
      }
      return out;
    },
  };
}

/** The compiled int8 module for rows of wb bytes (once per width and process). */
export const int8Module = perWidth((wb) => [rowsFunction('score8', wb, code(wb)), groupsFunction('many8', wb, 2 * wb, code(wb)), dotFunction()]);
