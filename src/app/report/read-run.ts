// Reads a training run directory: run.json (required), log.jsonl (a torn last
// line is ignored), summary.json (absent while a run is in progress or after a
// crash). User errors name the file in one line.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PeftError, errorReason } from '../../core/errors.js';
import { RunLog } from '../train/run-log.js';
import type { RunInfo, RunRecord, RunSummary, StepPoint, ValPoint } from './types.js';

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
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PeftError(`${file}: cannot read (${errorReason(e)})`);
  }
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

/** The step and validation records of a log.jsonl (other record types and malformed lines are skipped). */
export function readRunLog(file: string): { steps: StepPoint[]; vals: ValPoint[] } {
  const steps: StepPoint[] = [];
  const vals: ValPoint[] = [];
  for (const r of RunLog.read(file) as unknown as Record<string, unknown>[]) {
    if (typeof r !== 'object' || r === null) continue;
    const time = typeof r.time === 'string' ? r.time : undefined;
    if (r.type === 'step' && finite(r.step) && finite(r.loss)) {
      steps.push({ step: r.step, epoch: finite(r.epoch) ? r.epoch : 0, loss: r.loss, ms: finite(r.ms) ? r.ms : undefined, time });
    } else if (r.type === 'val' && finite(r.step) && isMetricMap(r.dice) && isMetricMap(r.iou)) {
      vals.push({ step: r.step, epoch: finite(r.epoch) ? r.epoch : 0, dice: r.dice, iou: r.iou, loss: finite(r.loss) ? r.loss : undefined, time });
    }
  }
  return { steps, vals };
}

/** Reads one run directory; throws a PeftError naming the file when it is not a readable run. */
export function readRun(dir: string): RunRecord {
  if (!existsSync(dir)) throw new PeftError(`${dir}: no such directory`);
  if (!statSync(dir).isDirectory()) throw new PeftError(`${dir}: not a directory (give a training run directory, the one holding run.json)`);
  const runFile = join(dir, 'run.json');
  if (!existsSync(runFile)) throw new PeftError(`${runFile}: not found (${dir} is not a training run directory)`);
  const info = validate<RunInfo>(runFile, runInfoSchema, readJson(runFile));
  const { steps, vals } = readRunLog(join(dir, 'log.jsonl'));
  const summaryFile = join(dir, 'summary.json');
  const summary = existsSync(summaryFile) ? validate<RunSummary>(summaryFile, summarySchema, readJson(summaryFile)) : undefined;
  return { dir, info, steps, vals, summary };
}
