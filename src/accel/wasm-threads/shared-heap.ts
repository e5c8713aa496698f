// Starts tfjs-backend-wasm on its threaded build's binary so that the
// backend's heap is a shared WebAssembly.Memory: the threaded kernels
// (pool.ts) then run on tensors in place, on every thread, with no copies.
//
// tfjs 4.22 turns that build off in Node (its flag is false there) because its
// own thread pool (Emscripten pthreads) cannot start: the pool's workers are
// blob: URLs. peftjs does not need those threads — its kernels have their own
// — only the shared memory. So, for the time of the backend's start only:
//
// - the flag is set, and the backend's thread count set to 1 (XNNPACK then
//   never starts a pthread);
// - the Worker class the Emscripten glue assigns and uses for its pool of 8
//   pthread workers is a stand-in that answers "loaded" to "load" and nothing
//   else (no pthread is ever run on one);
// - WebAssembly.instantiate is watched for the memory the glue passes to the
//   module, which is the heap.
//
// Everything is put back afterwards. Any surprise (a later tfjs whose glue
// differs, a start that fails or hangs) falls back to the plain SIMD build, as
// before, and the kernels copy their operands instead.
import * as tf from '@tensorflow/tfjs';

export interface SharedHeap {
  memory: WebAssembly.Memory;
  /** The backend's Emscripten module whose heap `memory` is. */
  module: unknown;
  malloc(bytes: number): number;
  free(ptr: number): void;
}

let heap: SharedHeap | undefined;
let failure: string | undefined;

const START_TIMEOUT_MS = 30000;

/** The shared heap the wasm backend started on, if it did. */
export function sharedHeap(): SharedHeap | undefined {
  return heap;
}

/** Why the wasm backend runs on the plain build (undefined when on the shared heap, or not tried). */
export function sharedHeapFailure(): string | undefined {
  return failure;
}

/** A stand-in for the glue's pthread workers: loads instantly, runs nothing. */
class IdleWorker {
  onmessage: ((e: { data: unknown }) => void) | undefined;
  on(): this {
    return this;
  }
  postMessage(message: { cmd?: string } | undefined): void {
    if (message?.cmd === 'load') setImmediate(() => this.onmessage?.({ data: { cmd: 'loaded' } }));
    else if (message?.cmd === 'run') throw new Error('peftjs: the wasm backend tried to start a thread of its own (its thread count is 1 here)');
  }
  unref(): void {}
  ref(): void {}
  terminate(): void {}
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

interface EmscriptenHeap {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
}

/**
 * Starts the wasm backend (tf.setBackend('wasm')) on the shared heap when
 * `shared`, else, or when that fails, on the plain build. Resolves to
 * setBackend's answer. tfjs-backend-wasm must be imported already.
 */
export async function startWasmBackend(shared: boolean): Promise<boolean> {
  if (!shared || typeof SharedArrayBuffer === 'undefined') return tf.setBackend('wasm');
  const wasmPackage = await import('@tensorflow/tfjs-backend-wasm');
  const env = tf.env();
  const workerBefore = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
  const instantiate = WebAssembly.instantiate;
  let captured: WebAssembly.Memory | undefined;
  let ok = false;
  try {
    env.set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasmPackage.setThreadsCount(1);
    Object.defineProperty(globalThis, 'Worker', { configurable: true, get: () => IdleWorker, set: () => {} });
    WebAssembly.instantiate = function (this: unknown, ...args: unknown[]) {
      const imports = args[1] as { env?: { memory?: unknown } } | undefined;
      if (imports?.env?.memory instanceof WebAssembly.Memory) captured = imports.env.memory;
      return (instantiate as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof WebAssembly.instantiate;
    ok = await withTimeout(tf.setBackend('wasm'), START_TIMEOUT_MS, 'the wasm backend on a shared heap');
    if (!ok) failure = 'the threaded build did not start';
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  } finally {
    WebAssembly.instantiate = instantiate;
    if (workerBefore) Object.defineProperty(globalThis, 'Worker', workerBefore);
    else delete (globalThis as { Worker?: unknown }).Worker;
  }
  if (ok) {
    const module = (tf.backend() as unknown as { wasm?: EmscriptenHeap }).wasm;
    if (captured && module && captured.buffer instanceof SharedArrayBuffer && module.HEAPU8.buffer === captured.buffer && typeof module._malloc === 'function') {
      heap = { memory: captured, module, malloc: (n) => module._malloc(n), free: (p) => module._free(p) };
      failure = undefined;
    } else {
      // it runs, on a heap the kernels cannot reach: they copy their operands
      failure = 'the threaded build started without a shared heap';
    }
    return true;
  }
  // the plain build, as without this module
  env.set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  return tf.setBackend('wasm');
}
