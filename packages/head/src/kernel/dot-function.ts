/**
 * The query projection's wasm function, in every scan module (float32 and
 * both int8 ones) so the scan's own helper threads can run it:
 *
 *   dot(a, q, nq, out, n, db): for each of n rows a_i at a and each of nq
 *     queries q_k at q (rows and queries db bytes apart, db a multiple of
 *     64), out[i nq + k] = a_i · q_k in f32
 *
 * Rows are taken BLOCK at a time and every query scans the block while it
 * sits in L2 (a batch reads A from memory once). Each dot is summed the same
 * way whatever nq is (four f32x4 chains, then the lanes in order), so a
 * query's u is bit for bit the same alone or in a batch, on any thread.
 */
import {
  BLOCK, BR, BR_IF, END, F32X4_ADD, F32X4_MUL, I32_ADD, I32_CONST, I32_EQZ, I32_LT_U, I32_SUB, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP,
  V128_CONST_ZERO, V128_LOAD, VOID, leb, sleb, storeSum, type ScanFunction,
} from './wasm-encoding.js';

const I32_MUL = 0x6c;
const I32_SHL = 0x74;
const SELECT = 0x1b;

/** Rows of A per block: 32 rows of 3840 floats (480 KB) stay in L2 while each query of a batch reads them. */
const BLOCK_ROWS = 32;

export function dotFunction(name = 'dot'): ScanFunction {
  const [A, Q, NQ, OUT, N, DB] = [0, 1, 2, 3, 4, 5];
  const [NB, K, QK, I, ROW, J, O] = [6, 7, 8, 9, 10, 11, 12];
  const ACC = [13, 14, 15, 16];
  const at = (base: number, offset: number) => [LOCAL_GET, base, LOCAL_GET, J, I32_ADD, ...V128_LOAD, 4, ...leb(offset)];
  const body: number[] = [];
  body.push(BLOCK, VOID, LOOP, VOID); // blocks of rows
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  body.push(LOCAL_GET, N, I32_CONST, ...sleb(BLOCK_ROWS), LOCAL_GET, N, I32_CONST, ...sleb(BLOCK_ROWS), I32_LT_U, SELECT, LOCAL_SET, NB);
  body.push(I32_CONST, 0, LOCAL_SET, K);
  body.push(LOOP, VOID); // queries
  body.push(LOCAL_GET, Q, LOCAL_GET, K, LOCAL_GET, DB, I32_MUL, I32_ADD, LOCAL_SET, QK);
  body.push(LOCAL_GET, A, LOCAL_SET, ROW);
  body.push(LOCAL_GET, OUT, LOCAL_GET, K, I32_CONST, 2, I32_SHL, I32_ADD, LOCAL_SET, O);
  body.push(LOCAL_GET, NB, LOCAL_SET, I);
  body.push(LOOP, VOID); // rows of the block
  for (const a of ACC) body.push(...V128_CONST_ZERO, LOCAL_SET, a);
  body.push(I32_CONST, 0, LOCAL_SET, J);
  body.push(LOOP, VOID); // columns, 16 a turn
  for (let m = 0; m < 4; m++) body.push(LOCAL_GET, ACC[m], ...at(ROW, 16 * m), ...at(QK, 16 * m), ...F32X4_MUL, ...F32X4_ADD, LOCAL_SET, ACC[m]);
  body.push(LOCAL_GET, J, I32_CONST, ...sleb(64), I32_ADD, LOCAL_TEE, J, LOCAL_GET, DB, I32_LT_U, BR_IF, 0, END);
  // Summed as the float32 scan sums (storeSum).
  body.push(LOCAL_GET, O, ...storeSum(ACC));
  body.push(LOCAL_GET, ROW, LOCAL_GET, DB, I32_ADD, LOCAL_SET, ROW);
  body.push(LOCAL_GET, O, LOCAL_GET, NQ, I32_CONST, 2, I32_SHL, I32_ADD, LOCAL_SET, O);
  body.push(LOCAL_GET, I, I32_CONST, 1, I32_SUB, LOCAL_TEE, I, BR_IF, 0, END);
  body.push(LOCAL_GET, K, I32_CONST, 1, I32_ADD, LOCAL_TEE, K, LOCAL_GET, NQ, I32_LT_U, BR_IF, 0, END);
  // The next block: its rows, its outputs, fewer rows left.
  body.push(LOCAL_GET, A, LOCAL_GET, NB, LOCAL_GET, DB, I32_MUL, I32_ADD, LOCAL_SET, A);
  body.push(LOCAL_GET, OUT, LOCAL_GET, NB, LOCAL_GET, NQ, I32_MUL, I32_CONST, 2, I32_SHL, I32_ADD, LOCAL_SET, OUT);
  body.push(LOCAL_GET, N, LOCAL_GET, NB, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  return { name, locals: [2, 7, 0x7f, 4, 0x7b], body };
}
