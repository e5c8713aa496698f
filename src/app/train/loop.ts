// A whole training run: epochs of shuffled batches, the step, validation every
// k epochs, the best checkpoint by validation Dice, the last checkpoint, a
// JSON-lines log, peak memory, and exact resumption.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { PeftError } from '../../core/errors.js';
import type { Dataset, Sample } from '../data/dataset.js';
import { Rng } from '../data/random.js';
import type { PeftModel } from '../../core/peft/compose.js';
import { Adam } from './adam.js';
import { checkpointDir, loadTrainingCheckpoint, saveTrainingCheckpoint, tidyCheckpoint, type TrainerState } from './checkpoint.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { createLoss } from './losses.js';
import { checkLrSchedule, lrAt, type LrSchedule } from './lr-schedule.js';
import { MemoryMeter } from './memory-meter.js';
import { visBatchWriter } from '../pictures/vis.js';
import { buildPrompts, disposePrompts, type PromptMode } from './prompts.js';
import { RunLog } from './run-log.js';
import { makeBatch, trainStep } from './step.js';

export interface TrainOptions {
  batch: number;
  lr: number;
  /** Stop after this many epochs (default 1 when `steps` is not given). */
  epochs?: number;
  /** Stop after this many optimiser steps in all. */
  steps?: number;
  /** Validate every k epochs (0 = only at the end). */
  valEvery: number;
  seed: number;
  loss: string;
  prompt: PromptMode;
  /** Write the last checkpoint every n steps as well as at every epoch end (0 = epoch ends only). */
  saveEvery?: number;
  /** How the learning rate changes over the run (default constant, the reference's). */
  lrSchedule?: LrSchedule;
  /** Every N validation batches, write a panel (image | truth | prediction per class, with Dice) into `<run>/vis/` (absent: none). */
  vis?: number;
}

export interface StepEvent {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  regulariser: number;
  ms: number;
  lastDice?: number;
}

export interface TrainCallbacks {
  onStep?(e: StepEvent): void;
  onValidation?(e: { step: number; epoch: number; result: EvalResult; best: boolean }): void;
  /** Polled between steps; true stops the run after saving (SIGINT/SIGTERM). */
  shouldStop?(): boolean;
}

export interface TrainSummary {
  steps: number;
  epochs: number;
  stoppedEarly: boolean;
  final: EvalResult | undefined;
  bestDice: number | null;
  bestStep: number | null;
  peakRss: number;
  peakTensorBytes: number;
  seconds: number;
  runDir: string;
}

export const LAST = 'checkpoints/last';
export const BEST = 'checkpoints/best';

/** Sample order of an epoch: a seeded shuffle, the same on every run with that seed. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return new Rng(seed, 'order', epoch).shuffle(Array.from({ length: n }, (_, i) => i));
}

/** Mean Dice over classes, the number the best checkpoint is chosen by. */
export function meanDice(r: EvalResult): number {
  const v = Object.values(r.dice);
  return v.reduce((a, b) => a + b, 0) / v.length;
}

/**
 * How long a run is: `steps` if given, else `epochs` (default 1) of
 * ceil(train size / batch) steps. What the loop runs, and what a method's
 * run binding (`bindRun`) and `peft plan` are told.
 */
export function runLength(options: Pick<TrainOptions, 'batch' | 'epochs' | 'steps'>, trainSize: number): { stepsPerEpoch: number; totalSteps: number; totalEpochs: number } {
  const stepsPerEpoch = Math.ceil(trainSize / options.batch);
  const totalSteps = options.steps ?? stepsPerEpoch * (options.epochs ?? 1);
  return { stepsPerEpoch, totalSteps, totalEpochs: Math.ceil(totalSteps / stepsPerEpoch) };
}

/** Checks the options a run is given (each names its `peft train` flag). */
export function validateTrainOptions(options: TrainOptions): void {
  const int = (v: number | undefined, flag: string, min: number) => {
    if (v === undefined) return;
    if (!Number.isSafeInteger(v) || v < min) throw new PeftError(`${flag} must be an integer of at least ${min}, got ${v}`);
  };
  if (!(Number.isSafeInteger(options.batch) && options.batch >= 1)) throw new PeftError(`--batch must be at least 1, got ${options.batch}`);
  if (!(options.lr > 0 && Number.isFinite(options.lr))) throw new PeftError(`--lr must be a positive number, got ${options.lr}`);
  int(options.epochs, '--epochs', 1);
  int(options.steps, '--steps', 1);
  int(options.valEvery, '--val-every', 0);
  int(options.saveEvery, '--save-every', 0);
  int(options.vis, '--vis', 1);
  if (options.lrSchedule !== undefined) checkLrSchedule(options.lrSchedule);
  if (!Number.isSafeInteger(options.seed)) throw new PeftError(`--seed must be an integer between ${Number.MIN_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}, got ${options.seed}`);
}

/** Lets pending I/O and signal handlers (SIGINT, SIGTERM) run between steps. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function trainLoop(
  peft: PeftModel,
  data: { train: Dataset; val?: Dataset },
  options: TrainOptions,
  runDir: string,
  callbacks: TrainCallbacks = {},
  resume = false,
): Promise<TrainSummary> {
  const started = performance.now();
  const { train } = data;
  if (train.length === 0) throw new PeftError('the training set is empty');
  validateTrainOptions(options);
  if (options.batch > train.length) throw new PeftError(`--batch ${options.batch} is larger than the training set (${train.length} samples)`);
  const { stepsPerEpoch, totalSteps, totalEpochs } = runLength(options, train.length);
  /** Epochs completed once `step` steps are done (the last, partial one counts at totalSteps). */
  const epochsDoneAt = (step: number) => (step >= totalSteps ? totalEpochs : Math.floor(step / stepsPerEpoch));
  const lossFn = createLoss(options.loss);
  const adam = new Adam({ lr: options.lr });
  const log = new RunLog(join(runDir, 'log.jsonl'));
  const meter = new MemoryMeter();
  let state: TrainerState = { step: 0, epoch: 0, bestDice: null, bestStep: null };
  try {
    if (resume) {
      if (checkpointDir(join(runDir, LAST))) {
        state = loadTrainingCheckpoint(join(runDir, LAST), peft, adam);
        // a swap a kill interrupted after the new checkpoint was in place leaves the old one beside it
        for (const which of [LAST, BEST]) tidyCheckpoint(join(runDir, which));
        // the log goes back to what it held at the checkpoint: later steps are done again
        log.truncate(state.logBytes, state.step);
        log.write({ type: 'info', step: state.step, message: 'resumed' });
      } else {
        // stopped before the first checkpoint: the run starts again from the beginning
        log.truncate(0, 0);
        log.write({ type: 'info', step: 0, message: 'resumed from the start (no checkpoint was written yet)' });
      }
    }
  } catch (err) {
    adam.dispose();
    throw err;
  }
  const save = async (dir: string, s: TrainerState) => saveTrainingCheckpoint(join(runDir, dir), peft, adam, { ...s, logBytes: log.size() });
  const validate = async (epoch: number): Promise<EvalResult | undefined> => {
    const set = data.val ?? train;
    const vis = options.vis ? visBatchWriter({ dir: join(runDir, 'vis'), every: options.vis, epoch, classes: set.channels }) : undefined;
    return evaluate(peft, set, { batch: options.batch, prompt: options.prompt, seed: options.seed, onBatch: vis?.onBatch });
  };
  /**
   * A validation that failed (a validation image that passed its header check
   * but not decoding, say) must not lose the epoch's steps: the last
   * checkpoint is saved with the state from before the epoch end, so that
   * --resume starts by validating again and goes on. Returns the error to
   * throw, saying whether the steps were kept.
   */
  const keepStepsAfter = async (err: unknown, before: TrainerState): Promise<unknown> => {
    let kept = true;
    try {
      await save(LAST, before);
    } catch {
      kept = false;
    }
    if (!(err instanceof PeftError)) return err;
    const then = kept ? `the last checkpoint keeps the ${before.step} steps trained: fix the file and --resume the run` : 'the last checkpoint could not be saved either';
    return new PeftError(`${err.message} (validation after step ${before.step} failed; ${then})`);
  };
  let lastDice: number | undefined;
  let final: EvalResult | undefined = state.final;
  let stopped = false;

  /** The epoch that ended at `state.step` is finished: validate, keep the best, save the last. */
  const endEpoch = async () => {
    const before = state;
    state = { ...state, epoch: epochsDoneAt(state.step) };
    const isLast = state.step >= totalSteps;
    if ((options.valEvery > 0 && state.epoch % options.valEvery === 0) || isLast) {
      peft.model.eval();
      let r: EvalResult | undefined;
      try {
        r = await validate(state.epoch);
      } catch (err) {
        peft.model.train();
        throw await keepStepsAfter(err, before);
      }
      peft.model.train();
      if (r) {
        const d = meanDice(r);
        lastDice = d;
        const best = state.bestDice === null || d > state.bestDice;
        if (best) state = { ...state, bestDice: d, bestStep: state.step, dice: r.dice, iou: r.iou };
        if (isLast) {
          final = r;
          state = { ...state, final: { dice: r.dice, iou: r.iou, dice05: r.dice05, iou05: r.iou05, loss: r.loss, count: r.count } };
        }
        log.write({ type: 'val', step: state.step, epoch: state.epoch, dice: r.dice, iou: r.iou, loss: r.loss });
        callbacks.onValidation?.({ step: state.step, epoch: state.epoch, result: r, best });
        if (best) await save(BEST, state);
      }
    }
    await save(LAST, state);
  };

  peft.model.train();
  try {
    for (;;) {
      // a stop saves at once; an epoch end it skipped is done first on resume
      if (stopped) break;
      if (state.epoch < epochsDoneAt(state.step)) {
        await endEpoch();
        continue;
      }
      if (state.step >= totalSteps) break;
      const epoch = Math.floor(state.step / stepsPerEpoch);
      const order = epochOrder(train.length, options.seed, epoch);
      const first = (state.step % stepsPerEpoch) * options.batch;
      for (let at = first; at < order.length && state.step < totalSteps; at += options.batch) {
        const t0 = performance.now();
        const idx = order.slice(at, at + options.batch);
        const step = state.step + 1;
        const samples: Sample[] = [];
        for (const i of idx) samples.push(await train.get(i, new Rng(options.seed, 'augment', epoch, i)));
        const prompts = buildPrompts(samples, options.prompt, new Rng(options.seed, 'prompt', step));
        const batch = makeBatch(peft, samples, prompts);
        adam.lr = lrAt(options.lrSchedule ?? 'constant', options.lr, step, totalSteps);
        let result;
        try {
          result = trainStep(peft, adam, batch, lossFn, step);
        } finally {
          tf.dispose([batch.images, batch.targets]);
          disposePrompts(prompts);
        }
        state = { ...state, step };
        const ms = performance.now() - t0;
        meter.sample();
        log.write({ type: 'step', step, epoch, loss: result.loss, regulariser: result.regulariser || undefined, lr: adam.lr, ms: Math.round(ms) });
        callbacks.onStep?.({ step, totalSteps, epoch, loss: result.loss, regulariser: result.regulariser, ms, lastDice });
        // every n steps, except where an epoch end saves anyway
        if (options.saveEvery && step % options.saveEvery === 0 && epochsDoneAt(step) === state.epoch) await save(LAST, state);
        await yieldToEventLoop();
        if (callbacks.shouldStop?.()) {
          stopped = true;
          break;
        }
      }
    }
    if (stopped) await save(LAST, state);
  } finally {
    peft.model.eval();
    adam.dispose();
  }
  return {
    steps: state.step,
    epochs: state.epoch,
    stoppedEarly: stopped,
    final,
    bestDice: state.bestDice,
    bestStep: state.bestStep,
    peakRss: meter.peakRss,
    peakTensorBytes: meter.peakTensorBytes,
    seconds: (performance.now() - started) / 1000,
    runDir,
  };
}
