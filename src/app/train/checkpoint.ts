// Training checkpoints: the adapter (method tensors + other trainable ones,
// e.g. the mask decoder), Adam's state and the trainer's counters, in one
// directory that is replaced atomically: a crash at any moment leaves the
// previous checkpoint or the new one, never a mixture.
//
// The swap, and what a SIGKILL at each point leaves:
//   1. write <dir>.tmp-<pid>/ fully (each file fsynced; trainer_state.json last)
//                                       -> <dir> (or <dir>.old) untouched
//   2. if <dir> is complete: rename <dir> -> <dir>.old
//                                       -> only <dir>.old: `checkpointDir` finds it
//   3. rename <dir>.tmp-<pid> -> <dir>  -> <dir> (new) and <dir>.old (previous)
//   4. remove <dir>.old
// When <dir> is missing (a crash between 2 and 3 earlier), <dir>.old is the
// only checkpoint and is removed only after step 3 has put the new one in place.
// Temp folders left by killed processes are removed on the next save.
// Nothing is written through a symbolic link: `checkpoints/` must be a real
// folder of the run (a link there is refused), the temp folder is created
// anew, and links at `<dir>` or `<dir>.old` are renamed or removed themselves,
// never followed (fs.rm and rename act on the link).
import * as tf from '@tensorflow/tfjs';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { quoteName } from '../../core/text.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { ADAPTER_CONFIG_FILE, loadAdapter, readAdapterConfig, saveAdapter } from '../../core/io/adapter-files.js';
import { loadTensors, saveTensors } from '../../core/io/safetensors.js';
import type { PeftModel } from '../../core/peft/compose.js';
import { checkAdamState, type Adam } from './adam.js';
import { parseRunFile, trainerStateSchema } from '../runs/run-folder-schema.js';
import { makeDir } from '../../core/io/make-dir.js';
import { makeDirInside } from '../../core/io/no-follow.js';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
/**
 * Prefix, in optimizer.safetensors, of the live values of the method's and the
 * trainable tensors. The adapter files hold the method's exported form (AdaLoRA
 * prunes A, E, B to its rank pattern); a resume needs the tensors exactly as
 * training left them, in the shapes Adam's moments have.
 */
export const LIVE_PREFIX = 'param/';
/** The method's own training state (AdaLoRA's importance averages) in optimizer.safetensors. */
export const METHOD_STATE_PREFIX = 'method/';

export interface TrainerState {
  /** Global optimiser steps completed. */
  step: number;
  /** Epochs completed. */
  epoch: number;
  bestDice: number | null;
  bestStep: number | null;
  /** Validation that produced this checkpoint, if any. */
  dice?: Record<string, number>;
  iou?: Record<string, number>;
  /** Bytes of log.jsonl when the checkpoint was written: a resume truncates the log there. */
  logBytes?: number;
  /** The final validation, once the run has completed (a resume of a finished run reports it). */
  final?: { dice: Record<string, number>; iou: Record<string, number>; dice05: Record<string, number>; iou05: Record<string, number>; loss: number; count: number };
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems cannot fsync a directory; the renames stand
  }
}

function reason(err: unknown): string {
  if (err instanceof PeftError) return err.message;
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? String(e?.message ?? e).split('\n')[0]!;
}

/** Removes `<dir>.tmp-*` folders (this process's, and those of killed ones). */
function removeTemps(dir: string): void {
  const parent = dirname(dir);
  const prefix = `${basename(dir)}.tmp-`;
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(prefix)) rmSync(join(parent, n), { recursive: true, force: true });
}

/** Writes `<dir>` (e.g. run/checkpoints/last) from the model, optimiser and state. */
export async function saveTrainingCheckpoint(dir: string, peft: PeftModel, adam: Adam, state: TrainerState): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old`;
  try {
    // <run>/checkpoints: a real folder of the run, never a link to elsewhere
    makeDir(dirname(dirname(dir)));
    makeDirInside(dirname(dirname(dir)), basename(dirname(dir)));
    removeTemps(dir);
    mkdirSync(tmp);
    await saveAdapter(tmp, { model: peft.model, method: peft.method, methodKeys: peft.methodKeys, sites: peft.sites, backbone: peft.backbone });
    const tensors = new Map(adam.state());
    const own = new Map(peft.model.namedTensors());
    for (const key of new Set([...peft.methodKeys, ...peft.trainable().map(([k]) => k)])) {
      const p = own.get(key);
      if (p) tensors.set(`${LIVE_PREFIX}${key}`, p.variable);
    }
    for (const [k, t] of peft.method.trainingState?.() ?? []) tensors.set(`${METHOD_STATE_PREFIX}${k}`, t);
    await saveTensors(join(tmp, OPTIMIZER_FILE), tensors, { step: String(adam.step) });
    // written last: its presence marks a complete checkpoint
    writeFileAtomic(join(tmp, TRAINER_STATE_FILE), `${JSON.stringify({ ...state, adamStep: adam.step }, null, 2)}\n`);
    fsyncDir(tmp);
  } catch (err) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // nothing to clean where nothing could be made (a parent that is a file: ENOTDIR)
    }
    // say what is left only when there is something: a first save that fails keeps nothing
    const kept = checkpointDir(dir) ? 'the previous checkpoint is kept' : 'there was no earlier checkpoint to keep';
    throw new PeftError(`${dir}: cannot save the checkpoint (${reason(err)}); ${kept}`, { cause: err });
  }
  try {
    if (existsSync(join(dir, TRAINER_STATE_FILE))) {
      rmSync(old, { recursive: true, force: true });
      renameSync(dir, old);
    } else {
      // no complete <dir>: <dir>.old, if any, is the only checkpoint and stays until the new one is in place
      rmSync(dir, { recursive: true, force: true });
    }
    renameSync(tmp, dir);
    fsyncDir(dirname(dir));
    rmSync(old, { recursive: true, force: true });
  } catch (err) {
    throw new PeftError(`${dir}: cannot replace the checkpoint (${reason(err)}); the previous one is in ${existsSync(join(dir, TRAINER_STATE_FILE)) ? dir : old}`, { cause: err });
  }
}

/**
 * Finishes a swap that a crash interrupted after the new `<dir>` was in place
 * (between steps 3 and 4): when `<dir>` is complete, `<dir>.old` is the
 * superseded checkpoint and is removed, with any temp folders of killed
 * processes. Called when a run resumes, so that one that has nothing left to
 * save still leaves only its checkpoints. Best effort: a folder that cannot be
 * removed now is removed by the next save.
 */
export function tidyCheckpoint(dir: string): void {
  if (!existsSync(join(dir, TRAINER_STATE_FILE))) return;
  try {
    rmSync(`${dir}.old`, { recursive: true, force: true });
    removeTemps(dir);
  } catch {
    // the next save tries again
  }
}

/** The usable checkpoint directory: `dir`, or `dir.old` when a crash interrupted a swap. */
export function checkpointDir(dir: string): string | undefined {
  if (existsSync(join(dir, TRAINER_STATE_FILE))) return dir;
  if (existsSync(join(`${dir}.old`, TRAINER_STATE_FILE))) return `${dir}.old`;
  return undefined;
}

/** Whether every value of `t` is finite. */
function allFinite(t: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0] === 1);
}

export function readTrainerState(dir: string): TrainerState & { adamStep: number } {
  const path = join(dir, TRAINER_STATE_FILE);
  const text = readRegularTextFile(path, 'json');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${path}: not a valid trainer state (${(err as Error).message.split('\n')[0]})`);
  }
  // every counter's type and range (run-folder-schema.ts); Adam's step is the trainer's: one update a step
  const s = parseRunFile(trainerStateSchema, raw, path, 'a trainer state') as TrainerState & { adamStep: number };
  if (s.adamStep !== s.step) throw new PeftError(`${path}: adamStep must equal step (one optimiser update a step), got ${s.adamStep} and ${s.step}`);
  return s;
}

/**
 * Restores model tensors, Adam's state and the counters from a checkpoint
 * directory. The tensors come from their live copies in optimizer.safetensors
 * (checked against the adapter config's method, every one present and of the
 * model's shape before any is assigned); a checkpoint without them (older
 * peftjs) is loaded through its adapter files.
 */
export function loadTrainingCheckpoint(dir: string, peft: PeftModel, adam: Adam): TrainerState {
  const found = checkpointDir(dir);
  if (!found) throw new PeftError(`${dir}: no checkpoint to resume from`);
  const state = readTrainerState(found);
  const optPath = join(found, OPTIMIZER_FILE);
  const opt = loadTensors(optPath);
  try {
    // Adam's moments against the model's trainable tensors, before anything is assigned
    checkAdamState(opt, peft.trainable(), state.adamStep, optPath);
    const live = [...opt.keys()].filter((k) => k.startsWith(LIVE_PREFIX));
    if (live.length === 0) {
      loadAdapter(found, { model: peft.model, method: peft.method, methodKeys: peft.methodKeys, backbone: peft.backbone });
    } else {
      const cfg = readAdapterConfig(found);
      if (cfg.method !== peft.method.id) {
        throw new PeftError(`${join(found, ADAPTER_CONFIG_FILE)}: 'method' is '${cfg.method}' but the model's method is '${peft.method.id}'`);
      }
      const own = new Map(peft.model.namedTensors());
      for (const key of peft.methodKeys) {
        if (!opt.has(`${LIVE_PREFIX}${key}`)) throw new PeftError(`${optPath}: missing tensor '${LIVE_PREFIX}${key}' (a tensor of the method)`);
      }
      for (const k of live) {
        const p = own.get(k.slice(LIVE_PREFIX.length));
        const t = opt.get(k)!;
        if (!p) throw new PeftError(`${optPath}: unexpected tensor '${k}' (the model has no such tensor)`);
        if (t.shape.join(',') !== p.shape.join(',')) throw new PeftError(`${optPath}: tensor '${k}' has shape [${t.shape}] but the model expects [${p.shape}]`);
        if (!allFinite(t)) throw new PeftError(`${optPath}: tensor ${quoteName(k)} holds a non-finite value (Inf or NaN)`);
      }
      for (const k of live) {
        const p = own.get(k.slice(LIVE_PREFIX.length))!;
        const t = opt.get(k)!;
        tf.tidy(() => p.assign(t.dtype === p.dtype ? t : tf.cast(t, p.dtype)));
      }
    }
    const methodState = new Map([...opt].filter(([k]) => k.startsWith(METHOD_STATE_PREFIX)).map(([k, t]) => [k.slice(METHOD_STATE_PREFIX.length), t]));
    for (const [k, t] of methodState) {
      if (t.dtype !== 'float32' || !allFinite(t)) throw new PeftError(`${optPath}: method state ${quoteName(`${METHOD_STATE_PREFIX}${k}`)} must be finite float32 values, got ${t.dtype}${t.dtype === 'float32' ? ' with Inf or NaN' : ''}`);
    }
    if (methodState.size > 0) {
      if (!peft.method.loadTrainingState) throw new PeftError(`${optPath}: holds training state of method '${peft.method.id}', which cannot restore it`);
      peft.method.loadTrainingState(peft.model, methodState);
    }
    adam.load(state.adamStep, opt);
  } finally {
    tf.dispose([...opt.values()]);
  }
  return state;
}
