// Chooses the TensorFlow.js backend: tfjs-node-gpu, then tfjs-node, then wasm,
// then cpu, unless the user names one (`--backend`, PEFT_BACKEND). Each
// candidate that cannot be used is recorded with the reason, for `peft env`.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { PeftError } from '../core/errors.js';
import { registerExtraKernels } from '../accel/kernels/index.js';
import { registerNativeKernels } from '../accel/native/index.js';
import { startWasmBackend, wasmThreadsEnabled } from '../accel/wasm-threads/index.js';

export const BACKEND_ORDER = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_ORDER)[number];

export interface BackendAttempt {
  name: string;
  ok: boolean;
  reason?: string;
}

export interface BackendReport {
  active: string;
  attempts: BackendAttempt[];
  /** `threads`: the backend's own build is the threaded one (for the shared heap; its kernels run on one thread). */
  wasm?: { simd: boolean; threads: boolean };
}

const require = createRequire(import.meta.url);
let report: BackendReport | undefined;

/** Maps user spellings to a backend name (`gpu`, `node`, `tensorflow`, `wasm`, `cpu`). */
export function normaliseBackendName(name: string): BackendName {
  const n = name.trim().toLowerCase();
  const aliases: Record<string, BackendName> = {
    'tensorflow-gpu': 'tensorflow-gpu', gpu: 'tensorflow-gpu', 'node-gpu': 'tensorflow-gpu', 'tfjs-node-gpu': 'tensorflow-gpu',
    tensorflow: 'tensorflow', node: 'tensorflow', 'tfjs-node': 'tensorflow',
    wasm: 'wasm', cpu: 'cpu',
  };
  const found = aliases[n];
  if (!found) {
    throw new PeftError(`unknown backend '${name}': choose one of gpu, node, wasm, cpu`);
  }
  return found;
}

function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 200);
}

async function tryBackend(name: BackendName): Promise<string | undefined> {
  try {
    if (name === 'tensorflow-gpu') require('@tensorflow/tfjs-node-gpu');
    else if (name === 'tensorflow') require('@tensorflow/tfjs-node');
    else if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
    // tfjs-node-gpu registers its backend under the name 'tensorflow'.
    const registered = name === 'tensorflow-gpu' ? 'tensorflow' : name;
    if (!tf.findBackendFactory(registered)) return `backend '${registered}' did not register`;
    // wasm: on a heap the threaded kernels share (src/accel/wasm-threads/shared-heap.ts)
    const ok = name === 'wasm' ? await startWasmBackend(wasmThreadsEnabled()) : await tf.setBackend(registered);
    if (!ok) return `setBackend('${registered}') returned false`;
    await tf.ready();
    return undefined;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') return 'not installed';
    return message(err);
  }
}

export interface InitBackendOptions {
  /** A backend the user asked for; when it fails, that is an error, not a fallback. */
  preferred?: string;
  quiet?: boolean;
}

/** Selects and initialises the backend once; later calls return the same report. */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  if (report) return report;
  tf.enableProdMode();
  const requested = options.preferred ?? process.env.PEFT_BACKEND;
  const attempts: BackendAttempt[] = [];
  const order: readonly BackendName[] = requested ? [normaliseBackendName(requested)] : BACKEND_ORDER;
  for (const name of order) {
    const reason = await tryBackend(name);
    attempts.push(reason ? { name, ok: false, reason } : { name, ok: true });
    if (!reason) break;
  }
  const chosen = attempts.find((a) => a.ok);
  if (!chosen) {
    const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
    throw new PeftError(`no TensorFlow.js backend could start (${why})`);
  }
  report = { active: chosen.name, attempts };
  registerExtraKernels(report.active);
  registerNativeKernels(report.active);
  if (chosen.name === 'wasm') {
    const env = tf.env();
    report.wasm = {
      simd: Boolean(await env.getAsync('WASM_HAS_SIMD_SUPPORT')),
      threads: Boolean(await env.getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
    };
  }
  return report;
}

/** The report of the backend selection, if one has run. */
export function backendReport(): BackendReport | undefined {
  return report;
}
