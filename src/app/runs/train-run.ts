// The main job as a library call: resolve a run request into the RunSpec
// run.json records (the method's config bound to the run's length), build the
// model once, open the data, train, and write run.json, log.jsonl,
// checkpoints and summary.json into the run directory.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { backendReport } from '../backend.js';
import { PeftError, errorReason } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import type { Registry } from '../../core/registry/registry.js';
import { makeDir } from '../../core/io/make-dir.js';
import { acquireRunLock, describeHolder, isRunLockFile } from './run-lock.js';
import type { FolderLock } from '../../core/io/folder-lock.js';
import { adapterMethod } from '../../core/io/hf-peft.js';
import type { PeftModel } from '../../core/peft/compose.js';
import { checkSamples, type Dataset } from '../data/dataset.js';
import { runLength, trainLoop, validateTrainOptions, type TrainCallbacks, type TrainSummary } from '../train/loop.js';
import { defaultTrainingSetSize, methodConfigForRun, resolveOutSize, trainingPreset, type RunRequest } from './run-request.js';
import { resolveRecipe, type ResolvedRecipe } from './recipe.js';
import { resolveResume, type ResumeFlags } from './resume-request.js';
import { buildBackbone, buildPeftModel, composeRun, openDatasets, RUN_FILE, writeRunSpec, type RunSpec } from './run-spec.js';
import { requireAdapterPlugins, usedPlugins } from '../../core/plugins/require-plugins.js';

// composeRun checks the method's size before it allocates (checkMethodFits), for new and resumed runs alike
export { checkMethodFits, MAX_ADAPTER_TO_LAYER } from '../../core/peft/method-fits.js';

export const SUMMARY_FILE = 'summary.json';

export interface RunSummaryFile extends Omit<TrainSummary, 'final'> {
  final: { dice: Record<string, number>; iou: Record<string, number>; dice05: Record<string, number>; iou05: Record<string, number> } | null;
  methodParameters: number;
  trainableParameters: number;
  totalParameters: number;
  backend: string;
}

/** Refuses a run folder that holds anything (a new run), or no run (resume). */
function checkRunDir(dir: string, resume: boolean): void {
  if (resume) {
    if (!existsSync(join(dir, RUN_FILE))) throw new PeftError(`${dir}: nothing to resume (no ${RUN_FILE})`);
    return;
  }
  // the lock files of a run being started are not contents
  if (existsSync(dir) && readdirSync(dir).some((n) => !isRunLockFile(n))) {
    throw new PeftError(`${dir} already exists and is not empty: choose another --exp-name, or --resume it`);
  }
}

/** Creates a new run's folder and takes its lock; with the lock held, the folder must still hold no run (two new runs racing: one wins). */
function createRunDir(dir: string, takeLock: () => void): void {
  try {
    makeDir(dir);
  } catch (err) {
    throw new PeftError(`${dir}: cannot create the run folder (${errorReason(err)})`);
  }
  takeLock();
  checkRunDir(dir, false);
}

interface StartedRun {
  spec: RunSpec;
  peft: PeftModel;
  data?: { train: Dataset; val: Dataset; root: string };
}

/**
 * Resolves a new run's request into its RunSpec and composes the model, the
 * backbone built once: the default preset, the image and output sizes, the
 * adapter's method, the run's length (from --steps, or epochs of the training
 * set) and the method's config bound to it. A method config error is found
 * before any dataset is generated.
 */
async function startRun(registry: Registry, request: RunRequest & { options: RunSpec['options'] }): Promise<StartedRun> {
  // an adapter of a plugin that is not loaded: name the plugin before anything is built
  if (request.adapter) requireAdapterPlugins(registry, request.adapter);
  const backboneDef = registry.backbone(request.backbone.id);
  const backbone = { id: backboneDef.id, preset: trainingPreset(backboneDef, request.backbone.preset), overrides: request.backbone.overrides ?? {} };
  const model = buildBackbone(registry, { backbone, checkpoint: request.checkpoint, options: request.options });
  let spec: RunSpec;
  let data: StartedRun['data'];
  try {
    const imageSize = model.imageSize;
    const outSize = resolveOutSize(request, imageSize);
    const fromAdapter = request.adapter ? adapterMethod(request.adapter, { sites: model.sites(), decoderPath: model.decoderPath }, registry) : undefined;
    const methodDef = registry.method(fromAdapter?.id ?? request.method.id);
    const trainDecoder = request.trainDecoder ?? fromAdapter?.trainDecoder ?? true;
    const { method: _asked, version: _v, createdAt, ...rest } = request;
    const sized = { version: 1 as const, createdAt: createdAt ?? new Date().toISOString(), ...rest, backbone, trainDecoder, imageSize, outSize };
    let totalSteps = request.options.steps;
    if (totalSteps === undefined) {
      // epochs of the training set: the embedded data's size is known without generating it; other data is opened (cheap)
      let trainSize = sized.dataset.kind === 'refuge' && sized.dataset.path === null ? defaultTrainingSetSize() : undefined;
      if (trainSize === undefined) {
        data = await openDatasets(sized);
        trainSize = data.train.length;
      }
      if (trainSize === 0) throw new PeftError('the training set is empty');
      totalSteps = runLength(request.options, trainSize).totalSteps;
    }
    const { config } = methodConfigForRun(methodDef, request.method, totalSteps, fromAdapter?.config);
    // run.json records which plugins provided the backbone and the method (when the registry knows them)
    const plugins = usedPlugins(registry, { backbone: backbone.id, method: methodDef.id });
    spec = { ...sized, method: { id: methodDef.id, config }, ...(plugins.backbone || plugins.method ? { plugins } : {}) };
  } catch (err) {
    model.model.dispose();
    throw err;
  }
  return { spec, peft: composeRun(registry, spec, model), data };
}

/**
 * Trains a new run described by `request` into `runDir` (a folder, or a
 * function that names it from the resolved spec), or, with `resume`,
 * continues the run in `runDir` from its run.json and last checkpoint.
 */
export async function trainRun(
  registry: Registry,
  request: RunRequest,
  runDir: string | ((spec: RunSpec) => string),
  callbacks: TrainCallbacks & {
    /** A new run's recipe, resolved before the model is built or any data generated (not called on resume: the run keeps its own settings). */
    onRecipe?(recipe: ResolvedRecipe): void;
    /** On resume: one line per setting the flags changed (the run's length, --save-every, --vis). */
    onResumeChanges?(lines: string[]): void;
    onReady?(info: { spec: RunSpec; report: ReturnType<PeftModel['report']>; trainSize: number; valSize: number; dataRoot: string; runDir: string }): void;
    /** The run folder's lock was left by a process that is gone (SIGKILL) and is taken over: one line saying whose it was. */
    onLockTakeover?(line: string): void;
  } = {},
  /** true, or the `peft train` flags given with --resume (checked against the run: resume-request.ts). */
  resume: boolean | ResumeFlags = false,
): Promise<RunSummaryFile> {
  // one trainer per run folder, for the whole run (run-lock.ts); released however the run ends
  let lock: FolderLock | undefined;
  const takeLock = (dir: string) => {
    lock = acquireRunLock(dir, { command: request.command ?? (resume ? 'trainRun (resume)' : 'trainRun') });
    if (lock.tookOver) callbacks.onLockTakeover?.(`${dir}: took over the run's lock from ${describeHolder(lock.tookOver.holder)} (${lock.tookOver.reason})`);
  };
  try {
    return await trainRunLocked(registry, request, runDir, callbacks, resume, takeLock);
  } finally {
    lock?.release();
  }
}

async function trainRunLocked(
  registry: Registry,
  request: RunRequest,
  runDir: string | ((spec: RunSpec) => string),
  callbacks: NonNullable<Parameters<typeof trainRun>[3]>,
  resume: Parameters<typeof trainRun>[4],
  takeLock: (dir: string) => void,
): Promise<RunSummaryFile> {
  let started: StartedRun;
  let dir: string;
  if (resume) {
    if (typeof runDir !== 'string') throw new PeftError('resuming a run needs its folder (--exp-name)');
    dir = runDir;
    checkRunDir(dir, true);
    takeLock(dir);
    // the flags given with --resume: a contradiction is an error, a new length is applied (resume-request.ts)
    const plan = await resolveResume(registry, dir, resume === true ? {} : resume);
    started = { spec: plan.spec, peft: buildPeftModel(registry, plan.spec), data: plan.data };
    if (plan.changes.length) {
      writeRunSpec(dir, plan.spec);
      callbacks.onResumeChanges?.(plan.changes);
    }
  } else {
    // what the user left unset comes from the recipe: the backbone's from scratch, the reference's with a checkpoint
    const recipe = resolveRecipe(registry.backbone(request.backbone.id), request.checkpoint !== undefined, request.options);
    const options = { ...request.options, ...recipe.options };
    validateTrainOptions(options);
    if (request.dataset.valPath && request.dataset.kind !== 'isic') throw new PeftError(`--val-path is for --dataset isic; --dataset ${request.dataset.kind} finds its validation split itself`);
    if (typeof runDir === 'string') checkRunDir(runDir, false);
    callbacks.onRecipe?.(recipe);
    started = await startRun(registry, { ...request, options });
    dir = typeof runDir === 'string' ? runDir : runDir(started.spec);
  }
  const { spec, peft } = started;
  try {
    const data = started.data ?? (await openDatasets(spec));
    // every sample's headers, before the run folder is made and any step runs (a bad validation image would otherwise fail the first epoch end)
    await checkSamples([data.train, data.val]);
    if (!resume) {
      createRunDir(dir, () => takeLock(dir));
      writeRunSpec(dir, spec);
    }
    const report = peft.report();
    callbacks.onReady?.({ spec, report, trainSize: data.train.length, valSize: data.val.length, dataRoot: data.root, runDir: dir });
    const summary = await trainLoop(peft, data, spec.options, dir, callbacks, resume !== false);
    const out: RunSummaryFile = {
      ...summary,
      final: summary.final ? { dice: summary.final.dice, iou: summary.final.iou, dice05: summary.final.dice05, iou05: summary.final.iou05 } : null,
      methodParameters: report.methodParameters,
      trainableParameters: report.trainableParameters,
      totalParameters: report.totalParameters,
      backend: backendReport()?.active ?? 'unknown',
    };
    if (!summary.stoppedEarly) writeFileAtomic(join(dir, SUMMARY_FILE), `${JSON.stringify(out, null, 2)}\n`);
    return out;
  } finally {
    peft.dispose();
  }
}
