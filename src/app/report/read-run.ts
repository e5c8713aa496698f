// Reads a training run directory: run.json (required), log.jsonl (a torn last
// line is ignored), summary.json (absent while a run is in progress or after a
// crash). User errors name the file in one line. The log is read a line at a
// time and its curves kept to at most 100,000 points each (evenly
// downsampled beyond), so a crashed run of 300,000 steps or a log of
// gigabytes is read in bounded memory.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PeftError } from '../../core/errors.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { RunLog } from '../train/run-log.js';
import type { LogTotals, RunInfo, RunRecord, RunSummary, StepPoint, ValPoint } from './types.js';

const metricMap = z.record(z.string(), z.number());

const runInfoSchema = z
  .object({
    backbone: z.object({ id: z.string().min(1), preset: z.string().optional() }).loose(),
    method: z.object({ id: z.string().min(1), config: z.record(z.string(), z.unknown()).optional() }).loose(),
  })
  .loose();

const summarySchema = z
  .object({
    steps: z.number().optional(),
    epochs: z.number().optional(),
    seconds: z.number().optional(),
    bestDice: z.number().nullable().optional(),
    bestStep: z.number().nullable().optional(),
    final: z
      .object({ dice: metricMap, iou: metricMap, dice05: metricMap.optional(), iou05: metricMap.optional() })
      .loose()
      .nullable()
      .optional(),
    peakRss: z.number().optional(),
    peakTensorBytes: z.number().optional(),
    methodParameters: z.number().optional(),
    trainableParameters: z.number().optional(),
    totalParameters: z.number().optional(),
    backend: z.string().optional(),
  })
  .loose();

function readJson(file: string): unknown {
  const text = readRegularTextFile(file, 'json');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PeftError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

function validate<T>(file: string, schema: z.ZodType, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new PeftError(`${file}: ${key}: ${issue.message}`);
  }
  return r.data as T;
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isMetricMap = (x: unknown): x is Record<string, number> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && Object.values(x).every((v) => typeof v === 'number');

/** The most points of each curve kept from a log; beyond, every k-th (k a power of two) and the last. */
export const MAX_CURVE_POINTS = 100_000;

/** Keeps an even sample of at most `max` of the points added to it, the first and the last always among them. */
class Downsample<T> {
  private kept: T[] = [];
  private stride = 1;
  private seen = 0;
  private last: T | undefined;
  constructor(private readonly max: number) {}

  add(p: T): void {
    if (this.seen % this.stride === 0) {
      this.kept.push(p);
      if (this.kept.length > this.max) {
        // every other one: the kept points stay evenly spaced
        this.kept = this.kept.filter((_, i) => i % 2 === 0);
        this.stride *= 2;
      }
    }
    this.seen++;
    this.last = p;
  }

  points(): T[] {
    const last = this.last;
    return last !== undefined && this.kept.at(-1) !== last ? [...this.kept, last] : this.kept;
  }
}

/** The step and validation records of a log.jsonl (other record types and malformed lines are skipped), read a line at a time. */
export function readRunLog(file: string, maxPoints = MAX_CURVE_POINTS): { steps: StepPoint[]; vals: ValPoint[]; totals: LogTotals } {
  const steps = new Downsample<StepPoint>(maxPoints);
  const vals = new Downsample<ValPoint>(maxPoints);
  const totals: LogTotals = { steps: 0, stepMs: 0, latestTime: null };
  RunLog.forEach(file, (record) => {
    const r = record as unknown as Record<string, unknown>;
    const time = typeof r.time === 'string' ? r.time : undefined;
    const at = time ? Date.parse(time) : NaN;
    if (r.type === 'step' && finite(r.step) && finite(r.loss)) {
      const ms = finite(r.ms) ? r.ms : undefined;
      steps.add({ step: r.step, epoch: finite(r.epoch) ? r.epoch : 0, loss: r.loss, ms, time });
      totals.steps++;
      totals.stepMs += ms ?? 0;
    } else if (r.type === 'val' && finite(r.step) && isMetricMap(r.dice) && isMetricMap(r.iou)) {
      vals.add({ step: r.step, epoch: finite(r.epoch) ? r.epoch : 0, dice: r.dice, iou: r.iou, loss: finite(r.loss) ? r.loss : undefined, time });
    } else return;
    if (Number.isFinite(at) && (totals.latestTime === null || at > totals.latestTime)) totals.latestTime = at;
  });
  return { steps: steps.points(), vals: vals.points(), totals };
}

/** Reads one run directory; throws a PeftError naming the file when it is not a readable run. */
export function readRun(dir: string): RunRecord {
  if (!existsSync(dir)) throw new PeftError(`${dir}: no such directory`);
  if (!statSync(dir).isDirectory()) throw new PeftError(`${dir}: not a directory (give a training run directory, the one holding run.json)`);
  const runFile = join(dir, 'run.json');
  if (!existsSync(runFile)) throw new PeftError(`${runFile}: not found (${dir} is not a training run directory)`);
  const info = validate<RunInfo>(runFile, runInfoSchema, readJson(runFile));
  const { steps, vals, totals } = readRunLog(join(dir, 'log.jsonl'));
  const summaryFile = join(dir, 'summary.json');
  const summary = existsSync(summaryFile) ? validate<RunSummary>(summaryFile, summarySchema, readJson(summaryFile)) : undefined;
  return { dir, info, steps, vals, summary, logTotals: totals };
}
