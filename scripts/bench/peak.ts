// The machine's measured peak for the bench table's "% of peak" column: the
// float32 matrix product of the native addon (OpenBLAS, with the kernels the
// loader chose) on one large square product, at one thread and at every core.
// A training step cannot beat it: its products are smaller and it does other
// work besides.
import { availableParallelism } from 'node:os';
import { loadAddon } from '../../src/accel/native/addon.js';

export interface MachinePeak {
  /** GFLOP/s of one 1536³ product on one thread, and on `threads` threads (best of 5 each). */
  oneThread: number;
  allThreads: number;
  threads: number;
  /** Which library ran the products, and OpenBLAS's kernels, as the addon reports them. */
  blasCore: string;
}

/** Undefined when the addon is not built (the wasm backend alone has no comparable peak). */
export function measureMachinePeak(): MachinePeak | undefined {
  const load = loadAddon();
  if (!load.addon) return undefined;
  const addon = load.addon;
  const n = 1536;
  const a = new Float32Array(n * n).map((_, i) => ((i % 13) - 6) / 8);
  const b = new Float32Array(n * n).map((_, i) => ((i % 7) - 3) / 4);
  const c = new Float32Array(n * n);
  const dims = Int32Array.from([1, n, n, n, 0, 0, 0, 0, 0, 0, 0, 0]);
  const gflops = (threads: number): number => {
    addon.setThreads(threads);
    addon.gemm(a, b, c, dims); // warm-up: OpenBLAS's buffers and threads
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      addon.gemm(a, b, c, dims);
      best = Math.min(best, performance.now() - t0);
    }
    return (2 * n ** 3) / best / 1e6;
  };
  const threads = availableParallelism();
  const oneThread = gflops(1);
  const allThreads = threads > 1 ? gflops(threads) : oneThread;
  addon.setThreads(load.threads);
  const info = addon.info();
  const kernels = `OpenBLAS ${info.corename} kernels${load.core ? ` (OPENBLAS_CORETYPE=${load.core.coretype} set by peftjs)` : ''}`;
  return { oneThread, allThreads, threads, blasCore: info.products ? `${info.products}; ${kernels}` : kernels };
}
