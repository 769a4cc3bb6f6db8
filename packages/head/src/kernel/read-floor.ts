/**
 * The memory-read floor of a scan, for benchmarks: the same bytes as a
 * scorer's rows (n rows of rowBytes), in the same kind of shared wasm memory,
 * read once by the same number of threads with nothing but 16-byte loads
 * OR-ed together. No scan over those rows can be faster than this on the
 * machine it runs on.
 */
import { ScanPool } from './scan-pool.js';
import {
  BLOCK, BR, BR_IF, END, I32_ADD, I32_SUB, I32_CONST, I32_EQZ, I32_LT_U, LOCAL_GET, LOCAL_SET, LOCAL_TEE, LOOP, SIMD,
  MAX_PAGES, PAGE, V128_LOAD, VOID, leb, scanModuleOf, sleb,
} from './wasm-encoding.js';

const V128_OR = [SIMD, ...leb(0x50)];
const I32X4_EXTRACT0 = [SIMD, ...leb(0x1b), 0];
const I32_STORE = 0x36;
const CHUNK = 32768;
const MIN_ROWS_PER_THREAD = 8192;

// read(p, _, _, out, n, wb): ORs every 16 bytes of n rows of wb bytes (a multiple of 64) and stores a word of it at out.
function readModule(): WebAssembly.Module {
  const [P, , , OUT, N, WB, J, ACC] = [0, 1, 2, 3, 4, 5, 6, 7];
  const body: number[] = [];
  body.push(BLOCK, VOID, LOOP, VOID);
  body.push(LOCAL_GET, N, I32_EQZ, BR_IF, 1);
  body.push(I32_CONST, 0, LOCAL_SET, J);
  body.push(LOOP, VOID);
  for (let k = 0; k < 4; k++) body.push(LOCAL_GET, ACC, LOCAL_GET, P, LOCAL_GET, J, I32_ADD, ...V128_LOAD, 4, ...leb(16 * k), ...V128_OR, LOCAL_SET, ACC);
  body.push(LOCAL_GET, J, I32_CONST, ...sleb(64), I32_ADD, LOCAL_TEE, J, LOCAL_GET, WB, I32_LT_U, BR_IF, 0, END);
  body.push(LOCAL_GET, OUT, LOCAL_GET, ACC, ...I32X4_EXTRACT0, I32_STORE, 2, 0);
  // Every row's word goes to the same place: the reads are what is measured.
  body.push(LOCAL_GET, P, LOCAL_GET, WB, I32_ADD, LOCAL_SET, P);
  body.push(LOCAL_GET, N, I32_CONST, 1, I32_SUB, LOCAL_SET, N);
  body.push(BR, 0, END, END, END);
  return new WebAssembly.Module(scanModuleOf([{ name: 'read', locals: [2, 1, 0x7f, 1, 0x7b], body }]));
}

export class ReadFloor {
  private readonly memory: WebAssembly.Memory;
  private readonly read: (p: number, a: number, b: number, out: number, n: number, wb: number) => void;
  private readonly pool: ScanPool;
  private readonly rowBytes: number;

  constructor(readonly rows: number, rowBytes: number, threads = 1) {
    this.rowBytes = Math.ceil(rowBytes / 64) * 64;
    const bytes = 64 + rows * this.rowBytes;
    const pages = Math.ceil(bytes / PAGE);
    if (pages > MAX_PAGES) throw new RangeError(`${bytes} bytes do not fit in wasm32 memory`);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    // Touched once, as a scorer's rows are when they are written.
    new Uint8Array(this.memory.buffer).fill(1, 64);
    const module = readModule();
    this.read = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports.read as ReadFloor['read'];
    this.pool = new ScanPool(this.memory, threads - 1, module, ['read']);
  }

  /** Reads every row once. */
  run(): void {
    const wb = this.rowBytes;
    this.pool.split(
      this.rows,
      CHUNK,
      MIN_ROWS_PER_THREAD,
      (row, slot, n) => ({ p: 64 + row * wb, u: 0, w: 0, out: 16 * Math.min(3, Math.floor(slot / MIN_ROWS_PER_THREAD)), n, hb: wb }),
      (j) => this.read(j.p, j.u, j.w, j.out, j.n, j.hb),
      () => undefined,
    );
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
