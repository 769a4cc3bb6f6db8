/**
 * The scan's one WebAssembly function, emitted byte by byte:
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

/** 4 GiB, wasm32's ceiling: shared memories must declare a maximum (it is only reserved address space). */
export const MAX_PAGES = 65536;
export const PAGE = 65536;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, as i32.const wants (unsigned 64 would read back as -64). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

function name(s: string): number[] {
  return [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
}

// Opcodes used below.
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_EQZ = 0x45;
const I32_LT_U = 0x49;
const F32_ADD = 0x92;
const F32_STORE = 0x38;
const BLOCK = 0x02;
const LOOP = 0x03;
const BR = 0x0c;
const BR_IF = 0x0d;
const END = 0x0b;
const VOID = 0x40;
const SIMD = 0xfd;
const V128_LOAD = [SIMD, 0x00];
const V128_CONST_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0)];
const F32X4_ADD = [SIMD, ...leb(0xe4)];
const F32X4_MUL = [SIMD, ...leb(0xe6)];
const F32X4_PMAX = [SIMD, ...leb(0xeb)];
const F32X4_EXTRACT = (lane: number) => [SIMD, 0x1f, lane];

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
  body.push(LOCAL_GET, OUT);
  body.push(LOCAL_GET, ACC[0], LOCAL_GET, ACC[1], ...F32X4_ADD, LOCAL_GET, ACC[2], LOCAL_GET, ACC[3], ...F32X4_ADD, ...F32X4_ADD);
  body.push(LOCAL_TEE, ACC[0], ...F32X4_EXTRACT(0));
  for (let lane = 1; lane < 4; lane++) body.push(LOCAL_GET, ACC[0], ...F32X4_EXTRACT(lane), F32_ADD);
  body.push(F32_STORE, 2, 0);
  body.push(LOCAL_GET, P, LOCAL_GET, HB, I32_ADD, LOCAL_SET, P);
  body.push(LOCAL_GET, OUT, I32_CONST, 4, I32_ADD, LOCAL_SET, OUT);
  body.push(LOCAL_GET, N, I32_CONST, 1, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  const locals = [2, 1, 0x7f, 4, 0x7b]; // one i32, four v128
  const code = [...locals, ...body];

  // The memory is imported and shared so helper threads can scan other rows of the same store.
  const memoryImport = [...name('env'), ...name('memory'), 2, 3, ...leb(1), ...leb(MAX_PAGES)];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...memoryImport]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('score'), 0, 0]),
    ...section(10, [1, ...leb(code.length), ...code]),
  ];
  return new Uint8Array(bytes);
}

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
