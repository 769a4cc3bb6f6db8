/**
 * What the scan modules share: LEB128, the opcodes both loops use, and the
 * module around one exported function of six i32 arguments over an imported
 * shared memory (so helper threads can scan other rows of the same store).
 */

/** 4 GiB, wasm32's ceiling: shared memories must declare a maximum (it is only reserved address space). */
export const MAX_PAGES = 65536;
export const PAGE = 65536;

/** Rounded up to a whole cache line (where a region of a kernel's memory starts). */
export function align64(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

export function leb(n: number): number[] {
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
export function sleb(n: number): number[] {
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

export const LOCAL_GET = 0x20;
export const LOCAL_SET = 0x21;
export const LOCAL_TEE = 0x22;
export const I32_CONST = 0x41;
export const I32_ADD = 0x6a;
export const I32_SUB = 0x6b;
export const I32_EQZ = 0x45;
export const I32_LT_U = 0x49;
export const BLOCK = 0x02;
export const LOOP = 0x03;
export const BR = 0x0c;
export const BR_IF = 0x0d;
export const END = 0x0b;
export const VOID = 0x40;
export const SIMD = 0xfd;
export const V128_LOAD = [SIMD, 0x00];
export const V128_CONST_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0)];
export const F32_ADD = 0x92;
export const F32_STORE = 0x38;
export const F32X4_ADD = [SIMD, ...leb(0xe4)];
export const F32X4_MUL = [SIMD, ...leb(0xe6)];
const F32X4_EXTRACT = (lane: number) => [SIMD, 0x1f, lane];

/**
 * Stores at the address on the stack the f32 sum of four f32x4 chains,
 * (acc0 + acc1) + (acc2 + acc3), then its lanes in order: the one order the
 * float32 scan and the query projection both sum in, so their results are
 * reproducible bit for bit. Leaves acc[0] holding the combined vector.
 */
export function storeSum(acc: number[]): number[] {
  const out = [LOCAL_GET, acc[0], LOCAL_GET, acc[1], ...F32X4_ADD, LOCAL_GET, acc[2], LOCAL_GET, acc[3], ...F32X4_ADD, ...F32X4_ADD];
  out.push(LOCAL_TEE, acc[0], ...F32X4_EXTRACT(0));
  for (let lane = 1; lane < 4; lane++) out.push(LOCAL_GET, acc[0], ...F32X4_EXTRACT(lane), F32_ADD);
  out.push(F32_STORE, 2, 0);
  return out;
}

/** The steps after a row's sum is stored: the next row, the next output, one row fewer; then around again. */
export function nextRow(rowPtr: number, rowBytes: number, out: number, n: number): number[] {
  return [
    LOCAL_GET, rowPtr, LOCAL_GET, rowBytes, I32_ADD, LOCAL_SET, rowPtr,
    LOCAL_GET, out, I32_CONST, 4, I32_ADD, LOCAL_SET, out,
    LOCAL_GET, n, I32_CONST, 1, I32_SUB, LOCAL_SET, n,
    BR, 0, END, END, END,
  ];
}

/** One exported function of a scan module: six i32 arguments, no result. */
export interface ScanFunction {
  name: string;
  /** wasm's encoded local groups */
  locals: number[];
  body: number[];
}

/** A module exporting these functions, each `fn(a0..a5: i32)`, over the imported shared memory. */
export function scanModuleOf(fns: ScanFunction[]): Uint8Array {
  const memoryImport = [...name('env'), ...name('memory'), 2, 3, ...leb(1), ...leb(MAX_PAGES)];
  const codes = fns.map((f) => {
    const code = [...f.locals, ...f.body];
    return [...leb(code.length), ...code];
  });
  const exports = fns.flatMap((f, i) => [...name(f.name), 0, ...leb(i)]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...memoryImport]),
    ...section(3, [...leb(fns.length), ...fns.map(() => 0)]),
    ...section(7, [...leb(fns.length), ...exports]),
    ...section(10, [...leb(fns.length), ...codes.flat()]),
  ]);
}

/** A module exporting `fn(a0..a5: i32)` with these locals (wasm's encoded local groups) and body. */
export function scanModuleBytes(fn: string, locals: number[], body: number[]): Uint8Array {
  return scanModuleOf([{ name: fn, locals, body }]);
}
