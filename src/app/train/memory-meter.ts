import * as tf from '@tensorflow/tfjs';

export interface MemorySample {
  /** Resident set size of the process, bytes. */
  rss: number;
  /** Bytes held by live tensors (tf.memory().numBytes). */
  tensorBytes: number;
  numTensors: number;
  /** The wasm heap's size, when on wasm (it only grows). */
  wasmHeapBytes?: number;
}

/**
 * Tracks peak process and tensor memory across a run. Reading a peak takes a
 * sample first: a run with no step to do (a finished run resumed) still
 * reports this process's memory, never 0.
 */
export class MemoryMeter {
  private rssPeak = 0;
  private tensorPeak = 0;

  get peakRss(): number {
    this.sample();
    return this.rssPeak;
  }

  get peakTensorBytes(): number {
    this.sample();
    return this.tensorPeak;
  }

  sample(): MemorySample {
    const mem = tf.memory() as tf.MemoryInfo & { numBytesInWASM?: number };
    const s: MemorySample = { rss: process.memoryUsage.rss(), tensorBytes: mem.numBytes, numTensors: mem.numTensors };
    const heap = wasmHeapBytes();
    if (heap !== undefined) s.wasmHeapBytes = heap;
    this.rssPeak = Math.max(this.rssPeak, s.rss);
    this.tensorPeak = Math.max(this.tensorPeak, s.tensorBytes);
    return s;
  }
}

/** The wasm backend's heap size in bytes, or undefined on other backends. */
export function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8?.byteLength;
}
