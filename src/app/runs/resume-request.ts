// What `peft train --resume` may be told. A resumed run is the run its
// run.json describes: a flag that says otherwise (another method, rate,
// batch, dataset…) is an error naming the flag and the run's value, not a
// silent no-op. Only what does not change the trained weights up to the
// checkpoint may change, and each change is applied and said:
//   --steps / --epochs   the run's length (extend it, or end it sooner, not
//                        before the last checkpoint's step); a rate schedule
//                        follows the new length (cosine decays to 0 at its last
//                        step). A method whose config was bound to the run's
//                        length (bindRun: AdaLoRA's total_step and warm-ups)
//                        refuses a new length: its schedule has already pruned
//                        by the old one, and rebinding it would train a run no
//                        uninterrupted run matches.
//   --save-every, --vis  what is written along the way.
// Flags given equal to the run's values are fine.
import { lstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { bindMethodConfig, methodConfigFromFlags, METHOD_FLAGS, type MethodFlagValues } from '../../core/registry/method-config.js';
import type { Registry } from '../../core/registry/registry.js';
import { briefValue } from '../../core/text.js';
import { checkpointDir, readTrainerState } from '../train/checkpoint.js';
import { LAST, runLength, type TrainOptions } from '../train/loop.js';
import { openDatasets, readRunSpec, requireRunPlugins, RUN_FILE, type RunSpec } from './run-spec.js';

/** The `peft train` flags the user gave with --resume (by flag name, parsed; absent: not given). */
export type ResumeFlags = Partial<{
  backbone: string;
  preset: string;
  'image-size': number;
  method: string;
  /** The common method flags and --set, parsed (methodFlagValues). */
  methodFlags: MethodFlagValues;
  checkpoint: string;
  adapter: string;
  'freeze-decoder': boolean;
  'out-size': number;
  dataset: string;
  'data-path': string;
  'val-path': string;
  augment: boolean;
  batch: number;
  lr: number;
  'lr-schedule': string;
  epochs: number;
  steps: number;
  'val-every': number;
  seed: number;
  loss: string;
  prompt: string;
  'save-every': number;
  vis: number;
}>;

/** The run's log, beside run.json (app/train/loop.ts writes it). */
export const RUN_LOG_FILE = 'log.jsonl';

export interface ResumePlan {
  /** The run as it resumes: run.json's, with the changes applied. */
  spec: RunSpec;
  /** One line per change, for the user; empty when nothing changed. */
  changes: string[];
  /** Whether the run's length changed (check it with `checkResumedLength` once the training set's size is known). */
  lengthChanged: boolean;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Checks the flags given with --resume against the run (`runFile` names its
 * run.json in messages) and applies those that may change. Everything but the
 * run's length is checked here, before anything is built.
 */
export function resumeRequest(registry: Registry, spec: RunSpec, runFile: string, flags: ResumeFlags): ResumePlan {
  const contradicts = (flag: string, given: unknown, what: string, runs: unknown): never => {
    const shown = given === '' ? `--${flag}` : `--${flag} ${briefValue(given)}`;
    throw new PeftError(`${shown} contradicts the run's ${what} ${runs === undefined || runs === null ? 'none' : briefValue(runs)} (${runFile}); a resumed run keeps its settings: drop the flag, or start a new run`);
  };
  const check = (flag: keyof ResumeFlags, what: string, runs: unknown, normalise: (v: never) => unknown = (v) => v) => {
    const v = flags[flag];
    if (v !== undefined && !same(normalise(v as never), runs)) contradicts(flag, v, what, runs);
  };
  const path = (v: string) => resolve(v);
  if (flags.backbone !== undefined && registry.backbone(flags.backbone).id !== spec.backbone.id) contradicts('backbone', flags.backbone, 'backbone', spec.backbone.id);
  check('preset', 'preset', spec.backbone.preset);
  check('image-size', 'image size', spec.imageSize);
  if (flags.method !== undefined && registry.method(flags.method).id !== spec.method.id) contradicts('method', flags.method, 'method', spec.method.id);
  // the common method flags and --set, key by key against the run's method config
  const mf = flags.methodFlags ?? {};
  const def = registry.method(spec.method.id);
  const validated = (config: Record<string, unknown>): Record<string, unknown> => {
    try {
      return bindMethodConfig(def, config).config as Record<string, unknown>;
    } catch {
      return {}; // a value the schema refuses differs from the run's (which parsed)
    }
  };
  for (const flag of [...METHOD_FLAGS, 'set'] as const) {
    const value = mf[flag];
    if (value === undefined || (flag === 'set' && Object.keys(value as object).length === 0)) continue;
    const keys = methodConfigFromFlags(def, { [flag]: value });
    for (const [key, v] of Object.entries(keys)) {
      const runs = spec.method.config[key];
      // compared as the method's schema reads them (a targets string and its list are the same setting)
      if (!same(v, runs) && !same(validated({ ...spec.method.config, [key]: v })[key], validated(spec.method.config)[key])) {
        const shown = flag === 'set' ? `set ${key}=${briefValue(v)}` : `${flag} ${briefValue(v)}`;
        throw new PeftError(`--${shown} contradicts the run's ${key} ${briefValue(runs)} (${runFile}); a resumed run keeps its method: drop the flag, or start a new run`);
      }
    }
  }
  check('checkpoint', 'checkpoint', spec.checkpoint, path);
  check('adapter', 'adapter', spec.adapter, path);
  if (flags['freeze-decoder'] !== undefined && flags['freeze-decoder'] === spec.trainDecoder) {
    contradicts(flags['freeze-decoder'] ? 'freeze-decoder' : 'no-freeze-decoder', '', 'mask decoder, which', spec.trainDecoder ? 'trains' : 'is frozen');
  }
  check('out-size', 'output size', spec.outSize);
  check('dataset', 'dataset', spec.dataset.kind, (v: string) => v.toLowerCase());
  check('data-path', 'data path', spec.dataset.path, path);
  check('val-path', 'validation path', spec.dataset.valPath ?? null, path);
  check('augment', 'augment', spec.augment);
  const o = spec.options;
  check('batch', 'batch', o.batch);
  check('lr', 'learning rate', o.lr);
  check('lr-schedule', 'learning-rate schedule', o.lrSchedule ?? 'constant');
  check('val-every', 'validation every', o.valEvery);
  check('seed', 'seed', o.seed);
  check('loss', 'loss', o.loss);
  check('prompt', 'prompt', o.prompt);

  // what may change
  const options: TrainOptions = { ...o };
  const changes: string[] = [];
  if (flags.steps !== undefined && flags.steps !== o.steps) {
    options.steps = flags.steps;
    changes.push(`--steps ${flags.steps}: the run now ends at step ${flags.steps}${o.steps !== undefined ? ` (it was ${o.steps})` : ` (it ran ${o.epochs ?? 1} epoch${(o.epochs ?? 1) === 1 ? '' : 's'})`}`);
  } else if (flags.steps === undefined && flags.epochs !== undefined && (flags.epochs !== (o.epochs ?? 1) || o.steps !== undefined)) {
    options.epochs = flags.epochs;
    delete options.steps;
    changes.push(`--epochs ${flags.epochs}: the run now ends after ${flags.epochs} epoch${flags.epochs === 1 ? '' : 's'}${o.steps !== undefined ? ` (it was ${o.steps} steps)` : ` (it was ${o.epochs ?? 1})`}`);
  } else if (flags.steps !== undefined && flags.epochs !== undefined && flags.epochs !== o.epochs) {
    options.epochs = flags.epochs; // --steps decides the length, as in a new run
  }
  const lengthChanged = options.steps !== o.steps || options.epochs !== o.epochs;
  if (lengthChanged && (o.lrSchedule ?? 'constant') !== 'constant') changes.push(`its ${o.lrSchedule} learning-rate schedule follows the new length (it reaches its end at the new last step)`);
  for (const [flag, key] of [['save-every', 'saveEvery'], ['vis', 'vis']] as const) {
    const v = flags[flag];
    if (v !== undefined && v !== o[key]) {
      options[key] = v;
      changes.push(`--${flag} ${v}: applied from here on (it was ${o[key] ?? 'unset'})`);
    }
  }
  return { spec: changes.length ? { ...spec, options } : spec, changes, lengthChanged };
}

/**
 * Once the training set's size is known: refuses a new length that ends
 * before the last checkpoint's step, or that would move keys the method bound
 * to the run's old length (`bindRun`: AdaLoRA's total_step and warm-ups).
 */
export function checkResumedLength(registry: Registry, recorded: RunSpec, resumed: RunSpec, trainSize: number, checkpointStep: number | undefined, runFile: string): void {
  const before = runLength(recorded.options, trainSize).totalSteps;
  const after = runLength(resumed.options, trainSize).totalSteps;
  const flag = resumed.options.steps !== recorded.options.steps ? `--steps ${resumed.options.steps}` : `--epochs ${resumed.options.epochs}`;
  if (checkpointStep !== undefined && after < checkpointStep) {
    throw new PeftError(`${flag} ends the run at step ${after}, before its last checkpoint (step ${checkpointStep}); give at least ${checkpointStep} steps`);
  }
  const def = registry.method(recorded.method.id);
  if (!def.bindRun || after === before) return;
  const was = def.bindRun({}, { totalSteps: before });
  const now = def.bindRun({}, { totalSteps: after });
  const moved = Object.keys(was).filter((k) => same(recorded.method.config[k], was[k]) && !same(was[k], now[k]));
  if (moved.length) {
    throw new PeftError(
      `${flag} changes the run's length from ${before} to ${after} steps, but method '${def.id}' bound ${moved.map((k) => `${k}=${briefValue(was[k])}`).join(', ')} to it (${runFile}): its schedule has already run by those; a resumed run keeps them, so start a new run for ${after} steps`,
    );
  }
}

/** A run to resume, as it resumes: its spec with the flags' changes, and the training data when opening it was needed to check them. */
export interface ResolvedResume extends ResumePlan {
  data?: Awaited<ReturnType<typeof openDatasets>>;
}

/**
 * Reads the run in `dir` (its run.json through the run-folder schema), checks
 * that its plugins are loaded, and applies the --resume flags: everything but
 * a new length is checked before any data is opened; a new length is checked
 * against the training set's size and the last checkpoint's step.
 */
export async function resolveResume(registry: Registry, dir: string, flags: ResumeFlags): Promise<ResolvedResume> {
  const recorded = readRunSpec(dir);
  // the log a resume truncates and appends to: a regular file or nothing (a folder there was a raw EISDIR)
  const log = join(dir, RUN_LOG_FILE);
  const st = lstatSync(log, { throwIfNoEntry: false });
  if (st && !st.isFile()) throw new PeftError(`${log}: must be a regular file (the run's log), got a ${st.isDirectory() ? 'folder' : st.isSymbolicLink() ? 'symbolic link' : 'special file'}`);
  requireRunPlugins(registry, dir, recorded);
  const runFile = join(dir, RUN_FILE);
  const plan = resumeRequest(registry, recorded, runFile, flags);
  if (!plan.lengthChanged) return plan;
  const data = await openDatasets(plan.spec);
  const found = checkpointDir(join(dir, LAST));
  checkResumedLength(registry, recorded, plan.spec, data.train.length, found ? readTrainerState(found).step : undefined, runFile);
  return { ...plan, data };
}
