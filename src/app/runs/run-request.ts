// What `peft train` and `peft plan` are asked for, resolved the same way by
// both: the default preset, the method's config from the common flags and
// `--set`, and the run's length, which the method's run binding follows.
import { PeftError } from '../../core/errors.js';
import type { BackboneDefinition, MethodDefinition } from '../../core/registry/definitions.js';
import { bindMethodConfig, methodConfigFromFlags, type BoundMethodConfig, type MethodFlagValues } from '../../core/registry/method-config.js';
import { defaultSynthOptions } from '../data/synth-output.js';
import { synthSplits } from '../data/synthetic-fundus.js';
import { runLength, type TrainOptions } from '../train/loop.js';
import type { LrSchedule } from '../train/lr-schedule.js';
import type { RunSpec } from './run-spec.js';

/** The preset a backbone gets when none is asked for: its CPU-sized `tiny` if it has one (trains in minutes), else its default. */
export const TRAINING_PRESET = 'tiny';

/** The preset `train` and `plan` use: the one asked for, else TRAINING_PRESET when the backbone has it, else its default preset. */
export function trainingPreset(def: BackboneDefinition, preset?: string): string {
  return preset ?? (TRAINING_PRESET in def.presets ? TRAINING_PRESET : def.defaultPreset);
}

/** The method as asked for: its id, keys set by name, and the common flags' values (bound by the method's `flagKeys`). */
export interface MethodRequest {
  id: string;
  config?: Record<string, unknown>;
  flags?: MethodFlagValues;
}

/**
 * A request's training options: the learning rate, its schedule and the
 * run's length (steps, epochs) may be left unset, for the recipe to fill in
 * (src/app/runs/recipe.ts: the backbone's from-scratch recipe without a
 * checkpoint, the reference's with one).
 */
export type RequestOptions = Omit<TrainOptions, 'lr' | 'lrSchedule'> & { lr?: number; lrSchedule?: LrSchedule };

/**
 * A new training run as asked for. Unlike the RunSpec that run.json records,
 * the preset may be left to the default, the method's config holds only what
 * the user set (the run fills in the rest), the image and output sizes
 * default to the backbone's, and the rate, schedule and length to the recipe.
 */
export interface RunRequest extends Omit<RunSpec, 'version' | 'createdAt' | 'backbone' | 'method' | 'trainDecoder' | 'imageSize' | 'outSize' | 'options'> {
  version?: 1;
  createdAt?: string;
  backbone: { id: string; preset?: string; overrides?: Record<string, unknown> };
  /** With `adapter`, the adapter's method replaces `method.id` and its config is the base the user's keys override. */
  method: MethodRequest;
  /** Whether the mask decoder trains; default: as the adapter says (`modules_to_save`), else true. */
  trainDecoder?: boolean;
  /** If given, must be the backbone's image size. */
  imageSize?: number;
  /** Target (and metric) resolution; default: the mask decoder's output, image size / 4. */
  outSize?: number;
  options: RequestOptions;
}

/** The training-set size of the embedded synthetic data (used without --data-path), known without generating it. */
export function defaultTrainingSetSize(): number {
  return synthSplits({ ...defaultSynthOptions }).train.length;
}

/** A run's length in optimiser steps, and how it was reached (for `peft plan`). */
export interface RunLengthInfo {
  totalSteps: number;
  /** e.g. "1 epoch of 400 steps (800 training samples of the default dataset, batch 2)" or "--steps 200". */
  from: string;
}

/**
 * The run's length from its options and training-set size (`from` names the
 * set in words, and `stepsFrom` where the steps came from when not --steps:
 * "mobile_sam's from-scratch recipe").
 */
export function describeRunLength(options: Pick<TrainOptions, 'batch' | 'epochs' | 'steps'>, trainSize: number, set: string, stepsFrom?: string): RunLengthInfo {
  const { stepsPerEpoch, totalSteps } = runLength(options, trainSize);
  if (options.steps !== undefined) return { totalSteps, from: stepsFrom ?? `--steps ${options.steps}` };
  const epochs = options.epochs ?? 1;
  return { totalSteps, from: `${epochs} epoch${epochs === 1 ? '' : 's'} of ${stepsPerEpoch} steps (${trainSize} training samples of ${set}, batch ${options.batch})` };
}

/**
 * The method's config for a run of `totalSteps` steps (undefined: nothing is
 * trained): `base` (an adapter's saved config) under the keys the user set by
 * flag or by name, with the method's run binding filling in what the user
 * left unset.
 */
export function methodConfigForRun(
  def: MethodDefinition,
  request: MethodRequest,
  totalSteps: number | undefined,
  base: Record<string, unknown> = {},
): BoundMethodConfig<Record<string, unknown>> {
  const user = { ...request.config, ...methodConfigFromFlags(def, request.flags ?? {}) };
  return bindMethodConfig(def, user, totalSteps === undefined ? undefined : { totalSteps }, base);
}

/** Checks the image and output sizes a request asks for against the backbone's image size; the output size to use. */
export function resolveOutSize(request: Pick<RunRequest, 'imageSize' | 'outSize'>, imageSize: number): number {
  if (request.imageSize !== undefined && request.imageSize !== imageSize) {
    throw new PeftError(`the run asks for image size ${request.imageSize} but the backbone's is ${imageSize} (set it with --image-size)`);
  }
  const outSize = request.outSize ?? imageSize / 4;
  if (!Number.isInteger(outSize) || outSize < 1) throw new PeftError(`--out-size must be a positive integer, got ${outSize}`);
  return outSize;
}
