// Run-level operations on a trained model: rebuild it from run.json and a
// checkpoint, then either fold the method's update into the base weights and
// write a plain checkpoint with the official key names (`peft merge`), or
// write its adapter in peftjs's or Hugging Face PEFT's format (`peft export`).
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { loadAdapter, saveAdapter } from '../../core/io/adapter-files.js';
import { exportHfPeft } from '../../core/io/hf-peft.js';
import { saveTensors } from '../../core/io/safetensors.js';
import type { Registry } from '../../core/registry/registry.js';
import { checkpointDir } from '../train/checkpoint.js';
import { buildPeftModel, readRunSpec, requireRunPlugins, type RunSpec } from './run-spec.js';
import type { PeftModel } from '../../core/peft/compose.js';

export interface RunModel {
  spec: RunSpec;
  peft: PeftModel;
  /** The checkpoint directory that was loaded. */
  checkpoint: string;
}

/** `best` (falling back to `last`), `last`, or a checkpoint directory of `runDir`. */
export function resolveRunCheckpoint(runDir: string, which = 'best'): string {
  const wanted = which === 'best' ? join(runDir, 'checkpoints/best') : which === 'last' ? join(runDir, 'checkpoints/last') : which;
  const dir = checkpointDir(wanted) ?? (which === 'best' ? checkpointDir(join(runDir, 'checkpoints/last')) : undefined);
  if (!dir) throw new PeftError(`${runDir}: no checkpoint '${which}' (expected checkpoints/best or checkpoints/last)`);
  return dir;
}

/** Rebuilds a run's model and loads a checkpoint's adapter into it; call `peft.dispose()` when done. */
export function openRunModel(registry: Registry, runDir: string, checkpoint = 'best'): RunModel {
  const spec = readRunSpec(runDir);
  requireRunPlugins(registry, runDir, spec);
  const dir = resolveRunCheckpoint(runDir, checkpoint);
  const peft = buildPeftModel(registry, spec);
  try {
    loadAdapter(dir, { model: peft.model, method: peft.method, methodKeys: peft.methodKeys, backbone: peft.backbone });
  } catch (err) {
    peft.dispose();
    throw err;
  }
  return { spec, peft, checkpoint: dir };
}

/**
 * Folds the method's update into the base weights (the method's `merge`) and
 * returns the model's state dict without the method's tensors: the official
 * keys only (`…attn.qkv.weight`, no `lora_*`), trained decoder included. The
 * tensors are the model's own (do not dispose); the model stays merged.
 */
export function mergedStateDict(peft: PeftModel): Map<string, tf.Tensor> {
  const method = peft.method;
  if (!method.merge) {
    throw new PeftError(`method '${method.id}' cannot be merged into the base weights (it adds modules, not a weight update); export its adapter with \`peft export\` instead`);
  }
  method.merge(peft.model);
  const added = new Set(peft.methodKeys);
  const out = new Map<string, tf.Tensor>();
  for (const [name, p] of peft.model.namedTensors()) if (!added.has(name)) out.set(name, p.variable);
  return out;
}

function refuseExisting(path: string, force: boolean | undefined, what: string): void {
  if (!existsSync(path) || force) return;
  if (statSync(path).isDirectory() && readdirSync(path).length === 0) return;
  throw new PeftError(`${path} already exists: choose another ${what}, or pass --force to overwrite`);
}

export interface MergeRunOptions {
  /** 'best' (default), 'last', or a checkpoint directory. */
  checkpoint?: string;
  /** The merged checkpoint file (.safetensors). */
  out: string;
  /** Overwrite `out` if it exists. */
  force?: boolean;
}

export interface MergeRunResult {
  out: string;
  checkpoint: string;
  method: string;
  tensors: number;
  parameters: number;
}

/** `peft merge`: writes the run's merged model as a plain safetensors checkpoint (official keys), atomically. */
export async function mergeRun(registry: Registry, runDir: string, options: MergeRunOptions): Promise<MergeRunResult> {
  const out = resolve(options.out);
  if (!/\.safetensors$/i.test(out)) throw new PeftError(`--out ${options.out}: the merged checkpoint is written as .safetensors`);
  refuseExisting(out, options.force, '--out');
  const spec = readRunSpec(runDir);
  requireRunPlugins(registry, runDir, spec);
  if (!registry.createMethod(spec.method.id, spec.method.config).merge) {
    throw new PeftError(`method '${spec.method.id}' cannot be merged into the base weights (it adds modules, not a weight update); export its adapter with \`peft export\` instead`);
  }
  const { peft, checkpoint } = openRunModel(registry, runDir, options.checkpoint);
  try {
    const state = mergedStateDict(peft);
    await saveTensors(out, state, { format: 'pt', 'peftjs.merged': `${spec.backbone.id}/${spec.backbone.preset} + ${spec.method.id}` });
    const parameters = [...state.values()].reduce((n, t) => n + t.size, 0);
    return { out, checkpoint, method: spec.method.id, tensors: state.size, parameters };
  } finally {
    peft.dispose();
  }
}

export type ExportFormat = 'peftjs' | 'hf-peft';

export interface ExportRunOptions {
  checkpoint?: string;
  format: ExportFormat;
  /** hf-peft: `base_model_name_or_path`, a Hugging Face model id (never the run's local --checkpoint path); default null. */
  baseModel?: string;
  /** The adapter directory to write. */
  out: string;
  force?: boolean;
}

/** `peft export`: the run's adapter as peftjs adapter files or as a Hugging Face PEFT adapter. */
export async function exportRun(registry: Registry, runDir: string, options: ExportRunOptions): Promise<{ out: string; checkpoint: string; files: string[]; tensors: string[] }> {
  if (options.format !== 'peftjs' && options.format !== 'hf-peft') throw new PeftError(`unknown --format '${String(options.format)}': choose peftjs or hf-peft`);
  const out = resolve(options.out);
  if (existsSync(out) && !statSync(out).isDirectory()) throw new PeftError(`${out} is a file: --out names the adapter folder`);
  refuseExisting(out, options.force, '--out');
  const { peft, checkpoint } = openRunModel(registry, runDir, options.checkpoint);
  try {
    if (options.format === 'peftjs') {
      const r = await saveAdapter(out, peft);
      return { out, checkpoint, files: [r.configPath, r.weightsPath], tensors: r.tensors };
    }
    const r = await exportHfPeft(out, peft, registry, { baseModel: options.baseModel ?? null });
    return { out, checkpoint, files: [r.configPath, r.weightsPath], tensors: r.tensors };
  } finally {
    peft.dispose();
  }
}
