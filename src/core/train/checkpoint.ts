// Training checkpoints: the adapter (method tensors + other trainable ones,
// e.g. the mask decoder), Adam's state and the trainer's counters, in one
// directory that is replaced atomically: a crash at any moment leaves the
// previous checkpoint or the new one, never a mixture.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadAdapter, saveAdapter } from '../io/adapter-files.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import type { PeftModel } from '../peft/compose.js';
import type { Adam } from './adam.js';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';

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
}


/** Writes `<dir>` (e.g. run/checkpoints/last) from the model, optimiser and state. */
export async function saveTrainingCheckpoint(dir: string, peft: PeftModel, adam: Adam, state: TrainerState): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await saveAdapter(tmp, { model: peft.model, method: peft.method, methodKeys: peft.methodKeys, sites: peft.sites, backbone: peft.backbone });
    await saveTensors(join(tmp, OPTIMIZER_FILE), adam.state(), { step: String(adam.step) });
    writeFileAtomic(join(tmp, TRAINER_STATE_FILE), `${JSON.stringify({ ...state, adamStep: adam.step }, null, 2)}\n`);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  // swap: dir -> dir.old, tmp -> dir, drop dir.old. A crash in between leaves dir.old, which load finds.
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/** The usable checkpoint directory: `dir`, or `dir.old` when a crash interrupted a swap. */
export function checkpointDir(dir: string): string | undefined {
  if (existsSync(join(dir, TRAINER_STATE_FILE))) return dir;
  if (existsSync(join(`${dir}.old`, TRAINER_STATE_FILE))) return `${dir}.old`;
  return undefined;
}

export function readTrainerState(dir: string): TrainerState & { adamStep: number } {
  const path = join(dir, TRAINER_STATE_FILE);
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as TrainerState & { adamStep: number };
    if (!Number.isInteger(s.step) || s.step < 0 || !Number.isInteger(s.adamStep)) throw new Error('step counters missing');
    return s;
  } catch (err) {
    throw new PeftError(`${path}: not a valid trainer state (${(err as Error).message.split('\n')[0]})`);
  }
}

/** Restores model tensors, Adam's state and the counters from a checkpoint directory. */
export function loadTrainingCheckpoint(dir: string, peft: PeftModel, adam: Adam): TrainerState {
  const found = checkpointDir(dir);
  if (!found) throw new PeftError(`${dir}: no checkpoint to resume from`);
  const state = readTrainerState(found);
  loadAdapter(found, { model: peft.model, method: peft.method, methodKeys: peft.methodKeys, backbone: peft.backbone });
  const opt = loadTensors(join(found, OPTIMIZER_FILE));
  try {
    adam.load(state.adamStep, opt);
  } finally {
    tf.dispose([...opt.values()]);
  }
  return state;
}
