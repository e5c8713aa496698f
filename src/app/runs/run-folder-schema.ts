// What a run folder's own files may hold — run.json and each checkpoint's
// trainer_state.json — as zod schemas with the same bounds `peft train` puts
// on its flags, and the one reader that every entry point (train --resume,
// eval, merge, export, predict, serve, report) goes through. A file edited by
// hand or by an attacker gives one line naming the file and the key
// (`runs/x/run.json: options.batch must be an integer from 1 to 1024, got 0`),
// never a TypeError deep inside a model build.
import { z } from 'zod';
import { PeftError } from '../../core/errors.js';
import { briefValue } from '../../core/text.js';
import type { BackboneDefinition } from '../../core/registry/definitions.js';
import { lossNames } from '../train/losses.js';
import { lrSchedules } from '../train/lr-schedule.js';
import { promptModes } from '../train/prompts.js';

/** The largest input image side a run, a flag or an adapter may ask for, in pixels (SAM's own is 1024). */
export const MAX_IMAGE_SIZE = 4096;
/** The smallest input image side (a 16-pixel patch). */
export const MIN_IMAGE_SIZE = 16;
/** The largest batch a run, or `peft eval --batch`, may use. */
export const MAX_BATCH = 1024;
/** The longest run, in optimiser steps (and epochs). */
export const MAX_STEPS = 100_000_000;
/** Longest string value kept from a run folder (ids, presets, paths, the recorded command). */
const MAX_TEXT = 4096;

/** An integer in [min, max], with the rule in its message. */
export function boundedInt(min: number, max = Number.MAX_SAFE_INTEGER) {
  const rule = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  return z.custom<number>((v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max, { message: `must be ${rule}` });
}

const text = (what = 'a string') => z.custom<string>((v) => typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT, { message: `must be ${what} (1 to ${MAX_TEXT} characters)` });
const bool = z.custom<boolean>((v) => typeof v === 'boolean', { message: 'must be true or false' });
const positiveNumber = z.custom<number>((v) => typeof v === 'number' && Number.isFinite(v) && v > 0, { message: 'must be a finite number > 0' });
const finiteNumber = z.custom<number>((v) => typeof v === 'number' && Number.isFinite(v), { message: 'must be a finite number' });
const oneOf = <T extends string>(values: readonly T[]) => z.custom<T>((v) => (values as readonly unknown[]).includes(v), { message: `must be one of ${values.join(', ')}` });
const object = <S extends z.ZodRawShape>(shape: S) => z.object(shape, { error: 'must be an object' }).loose();
const record = <V extends z.ZodType>(value: V) => z.record(z.string(), value, { error: 'must be an object' });
const metrics = record(finiteNumber);

/** run.json: what `trainRun` writes (RunSpec); unknown keys are kept, for runs written by a newer peftjs. */
export const runSpecSchema = object({
  version: z.custom<1>((v) => v === 1, { message: 'must be 1 (a run description of this peftjs)' }),
  createdAt: z.custom<string>((v) => typeof v === 'string' && v.length <= 64, { message: 'must be a date string' }),
  // overrides: absent in run.json files of peftjs before backbone flags (--image-size), read as none
  backbone: object({ id: text('a backbone id'), preset: text('a preset name'), overrides: record(z.unknown()).default({}) }),
  method: object({ id: text('a method id'), config: record(z.unknown()) }),
  checkpoint: text('a file path').optional(),
  adapter: text('a folder path').optional(),
  trainDecoder: bool,
  imageSize: boundedInt(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
  outSize: boundedInt(1, MAX_IMAGE_SIZE),
  dataset: object({
    kind: oneOf(['refuge', 'isic'] as const),
    path: text('a path').nullable(),
    valPath: text('a path').nullable().optional(),
    channels: z.array(text('a class name'), { error: 'must be a list of class names' }).min(1, { error: 'must name at least one class' }).max(64, { error: 'must name at most 64 classes' }).optional(),
  }),
  // absent in run.json files of peftjs before --augment: no augmentation
  augment: bool.default(false),
  options: object({
    batch: boundedInt(1, MAX_BATCH),
    lr: positiveNumber,
    // null: not set (earlier run.json files wrote the unset one as null)
    epochs: boundedInt(1, MAX_STEPS).nullish(),
    steps: boundedInt(1, MAX_STEPS).nullish(),
    valEvery: boundedInt(0),
    seed: boundedInt(Number.MIN_SAFE_INTEGER),
    loss: oneOf(lossNames),
    prompt: oneOf(promptModes),
    saveEvery: boundedInt(0).optional(),
    lrSchedule: oneOf(lrSchedules).optional(),
    vis: boundedInt(1).optional(),
  }),
  command: z.custom<string>((v) => typeof v === 'string' && v.length <= 100_000, { message: 'must be a string' }).optional(),
  plugins: z.unknown().optional(),
});

/** A checkpoint's trainer_state.json: the trainer's counters (TrainerState) and Adam's step. */
export const trainerStateSchema = object({
  step: boundedInt(0, MAX_STEPS),
  epoch: boundedInt(0, MAX_STEPS),
  bestDice: finiteNumber.nullable(),
  bestStep: boundedInt(0, MAX_STEPS).nullable(),
  dice: metrics.optional(),
  iou: metrics.optional(),
  logBytes: boundedInt(0).optional(),
  final: object({ dice: metrics, iou: metrics, dice05: metrics, iou05: metrics, loss: finiteNumber, count: boundedInt(0) }).optional(),
  adamStep: boundedInt(0, MAX_STEPS),
});

/**
 * Refuses an image size (the key the backbone binds to `--image-size`) outside
 * [MIN_IMAGE_SIZE, MAX_IMAGE_SIZE] before the backbone is built: its
 * positional embeddings and activations grow with the square of it.
 */
export function checkBackboneOverrides(def: Pick<BackboneDefinition, 'id' | 'flagKeys'>, overrides: Record<string, unknown>, where = `backbone '${def.id}'`): void {
  const key = def.flagKeys?.['image-size'];
  if (key === undefined || !(key in overrides)) return;
  const v = overrides[key];
  if (!(Number.isSafeInteger(v) && (v as number) >= MIN_IMAGE_SIZE && (v as number) <= MAX_IMAGE_SIZE)) {
    throw new PeftError(`${where}: ${key} (the image size) must be an integer from ${MIN_IMAGE_SIZE} to ${MAX_IMAGE_SIZE}, got ${briefValue(v)}`);
  }
}

/** The value at `path` inside `value` (undefined where the path leaves it). */
function at(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/**
 * Validates `value`, read from `file`, against `schema`; a PeftError
 * `<file>: <key path> <rule>, got <value>` for the first problem otherwise.
 */
export function parseRunFile<T>(schema: z.ZodType<T>, value: unknown, file: string, what = 'a peftjs run description'): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.map(String).join('.');
  const got = at(value, issue.path);
  const shown = got === undefined ? 'nothing (the key is missing)' : briefValue(got);
  // every rule of the schemas carries its own message; the top level says what the file should be
  const rule = issue.path.length === 0 ? `must be an object (${what})` : issue.message;
  throw new PeftError(`${file}: ${key ? `${key} ` : ''}${rule}, got ${shown}`);
}
