// Native CPU kernels (issue 7): when the optional `@peftjs/native` addon is
// built (OpenBLAS, see docs/native.md), its matrix products, convolutions,
// Softmax, Transpose and Sum replace the wasm (or cpu) backend's kernels of the
// same names, and its fused kernels (GELU, layer norm, softmax's gradient,
// packed attention, Adam, AdaLoRA's importance averages) are registered beside
// them for src/core (nn, train) to use; everything else stays on the
// backend. `initBackend` calls `registerNativeKernels` last, after the wasm
// extra kernels, so the native ones win. PEFT_NATIVE=0 turns
// them off; `nativeStatus()` says whether they are active and why not.
import * as tf from '@tensorflow/tfjs';
import { registerExtraKernels } from '../kernels/index.js';
import { loadAddon, type NativeAddon } from './addon.js';
import { makeNativeKernels, nativeKernelNames } from './kernels.js';
import { installSoftmaxGradient } from './softmax-grad.js';

export { nativeProduct } from './kernels.js';
export { FUSED_KERNEL_NAMES, fusedKernelActive } from './fused-names.js';
export type { NativeAddon } from './addon.js';

export interface NativeStatus {
  active: boolean;
  /** Why the kernels are not active. */
  reason?: string;
  /** The backend they are registered on. */
  backend?: string;
  kernels: string[];
  /** OpenBLAS's build description (version, core, threading). */
  blas?: string;
  /** The kernels OpenBLAS runs (its core name), and whether peftjs asked for them (native/coretype.js). */
  blasCore?: string;
  /** Which library runs matrix products (oneDNN's sgemm when the addon was built with it, else OpenBLAS). */
  products?: string;
  threads?: number;
  /** Whether OpenBLAS (libopenblas-dev) is on this machine, as far as the addon package can tell. */
  openblasInstalled?: boolean;
  /** Whether the addon's package is installed (when it was looked for): off although true means its build failed or it does not load. */
  packageFound?: boolean;
}

const SUPPORTED = ['wasm', 'cpu'];

/** Per backend: the kernels replaced (to restore them) and the status. */
const replaced = new Map<string, Map<string, tf.KernelConfig | undefined>>();
const statuses = new Map<string, NativeStatus>();
let lastStatus: NativeStatus = { active: false, reason: 'not initialised (no backend chosen yet)', kernels: [] };

/** PEFT_NATIVE=0 (or false/off/no) turns the native kernels off. */
export function nativeDisabledByEnv(): boolean {
  const v = process.env.PEFT_NATIVE?.trim().toLowerCase();
  return v === '0' || v === 'false' || v === 'off' || v === 'no';
}

function currentKernel(name: string, backendName: string): tf.KernelConfig | undefined {
  try {
    return tf.getKernel(name, backendName);
  } catch {
    return undefined;
  }
}

function replace(config: tf.KernelConfig): void {
  if (currentKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

function install(backendName: string, addon: NativeAddon): string[] {
  if (replaced.has(backendName)) return nativeKernelNames(backendName);
  const saved = new Map<string, tf.KernelConfig | undefined>();
  for (const name of nativeKernelNames(backendName)) saved.set(name, currentKernel(name, backendName));
  const kernels = makeNativeKernels(backendName, addon, (name) => saved.get(name)?.kernelFunc);
  for (const k of kernels) replace(k);
  // Softmax's gradient runs PeftSoftmaxGrad where it is registered (tfjs's own elsewhere)
  installSoftmaxGradient();
  replaced.set(backendName, saved);
  return kernels.map((k) => k.kernelName);
}

function settle(backendName: string, status: NativeStatus): NativeStatus {
  statuses.set(backendName, status);
  lastStatus = status;
  return status;
}

/** OpenBLAS's description and the kernels it runs, with the loader's choice of them if it made one. */
function blasFields(load: { addon: NativeAddon; core?: { coretype: string; why: string } }): Pick<NativeStatus, 'blas' | 'blasCore' | 'products'> {
  const info = load.addon.info();
  const chosen = load.core ? ` (OPENBLAS_CORETYPE=${load.core.coretype}, set by peftjs: ${load.core.why})` : '';
  return { blas: info.config, blasCore: `${info.corename}${chosen}`, products: info.products };
}

/**
 * Registers the native kernels on the active backend (wasm or cpu) when the
 * addon is built and PEFT_NATIVE is not 0. Idempotent; returns the status.
 */
export function registerNativeKernels(active: string = tf.getBackend()): NativeStatus {
  if (nativeDisabledByEnv()) return settle(active, { active: false, reason: 'turned off by PEFT_NATIVE=0', kernels: [] });
  if (!SUPPORTED.includes(active)) {
    return settle(active, { active: false, reason: `not used on the '${active}' backend (native kernels are for wasm and cpu)`, kernels: [] });
  }
  const load = loadAddon();
  if (!load.addon) return settle(active, { active: false, reason: load.reason, kernels: [], openblasInstalled: load.openblasInstalled, packageFound: load.packageFound });
  if (active === 'wasm') {
    // the wasm extra kernels first (idempotent), so that they never replace ours later
    registerExtraKernels('wasm');
    if (!currentKernel('BatchMatMul', 'wasm')) {
      return settle(active, { active: false, reason: "the wasm backend's kernels are not registered yet", kernels: [] });
    }
  }
  const kernels = install(active, load.addon);
  return settle(active, { active: true, backend: active, kernels, ...blasFields(load), threads: load.threads, openblasInstalled: true });
}

/**
 * Test and benchmark switch: removes the native kernels of a backend (restoring
 * those they replaced) or puts them back. Returns whether they are now active.
 */
export function setNativeKernelsEnabled(enabled: boolean, backendName: string = tf.getBackend()): boolean {
  const saved = replaced.get(backendName);
  if (!enabled) {
    if (!saved) return false;
    for (const [name, original] of saved) {
      if (currentKernel(name, backendName)) tf.unregisterKernel(name, backendName);
      if (original) tf.registerKernel(original);
    }
    replaced.delete(backendName);
    statuses.set(backendName, { active: false, reason: 'turned off by setNativeKernelsEnabled(false)', kernels: [] });
    return false;
  }
  if (saved) return true;
  const load = loadAddon();
  if (!load.addon || !SUPPORTED.includes(backendName)) return false;
  const kernels = install(backendName, load.addon);
  statuses.set(backendName, { active: true, backend: backendName, kernels, ...blasFields(load), threads: load.threads, openblasInstalled: true });
  return true;
}

/** The status for a backend (default: the active one; else the last registration's). */
export function nativeStatus(backendName?: string): NativeStatus {
  const name = backendName ?? (tf.engine().backendName as string | undefined);
  return (name && statuses.get(name)) || lastStatus;
}

/** The addon itself, when built (for benchmarks and tests); undefined otherwise. */
export function nativeAddon(): NativeAddon | undefined {
  return nativeDisabledByEnv() ? undefined : loadAddon().addon;
}

/** Lines for `peft env`. */
export function nativeEnvLines(status: NativeStatus = nativeStatus()): string[] {
  if (!status.active) return [`native kernels: off (${status.reason ?? 'unknown reason'})`];
  return [
    `native kernels: on (${status.backend}; ${status.threads} thread${status.threads === 1 ? '' : 's'}): ${status.kernels.join(', ')}`,
    `  ${status.blas ?? 'OpenBLAS'}`,
    ...(status.blasCore ? [`  OpenBLAS kernels: ${status.blasCore}`] : []),
    ...(status.products ? [`  matrix products: ${status.products}`] : []),
  ];
}
