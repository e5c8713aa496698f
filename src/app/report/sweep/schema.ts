// The sweep folder as the report reads it (see docs/report.md, "Sweep
// reports"): sweep.json (what the sweep is: its jobs) and results/<jobId>.json
// (one per finished job, with the run's summary). One zod schema each; unknown
// keys are kept, so a newer `peft sweep` that adds fields still reports.
import { z } from 'zod';

/** A job id names files (runs/<id>/, results/<id>.json): no separators, no `..`. */
export const JOB_ID = /^(?!\.\.?$)[a-z0-9_.=-]{1,200}$/;

const jobId = z.string().regex(JOB_ID, 'a job id is 1-200 characters of a-z 0-9 _ . = -');
const gridValue = z.union([z.string(), z.number(), z.boolean()]);
const metricMap = z.record(z.string(), z.number());

export const sweepJobSchema = z
  .object({
    id: jobId,
    group: z.string().min(1).max(200),
    backbone: z.string().min(1).max(200),
    method: z.string().min(1).max(200),
    seed: z.number().int().min(0),
    values: z.record(z.string(), gridValue).default({}),
    args: z.array(z.string()).optional(),
  })
  .loose();

export const sweepFileSchema = z
  .object({
    version: z.literal(1),
    name: z.string().max(200).optional(),
    createdAt: z.string().optional(),
    spec: z.unknown().optional(),
    jobs: z.array(sweepJobSchema).max(100_000),
  })
  .loose();

/** The part of a run's summary.json the report uses (the trainer writes more). */
export const runSummarySchema = z
  .object({
    steps: z.number().optional(),
    epochs: z.number().optional(),
    seconds: z.number().optional(),
    bestDice: z.number().nullable().optional(),
    bestStep: z.number().nullable().optional(),
    final: z.object({ dice: metricMap, iou: metricMap }).loose().nullable().optional(),
    peakRss: z.number().optional(),
    peakTensorBytes: z.number().optional(),
    methodParameters: z.number().optional(),
    trainableParameters: z.number().optional(),
    totalParameters: z.number().optional(),
    backend: z.string().optional(),
  })
  .loose();

export const jobResultSchema = z
  .object({
    version: z.literal(1),
    id: jobId,
    group: z.string().optional(),
    seed: z.number().int().min(0).optional(),
    summary: runSummarySchema,
    attempts: z.number().optional(),
    seconds: z.number().optional(),
    finishedAt: z.string().optional(),
  })
  .loose();

export type SweepJob = z.infer<typeof sweepJobSchema>;
export type SweepFile = z.infer<typeof sweepFileSchema>;
export type JobResult = z.infer<typeof jobResultSchema>;
