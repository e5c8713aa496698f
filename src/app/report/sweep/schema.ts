// What the report reads of a job's result beyond what the sweep folder's own
// schema checks (src/app/sweep/folder.ts keeps `summary` open): the numbers of
// the run's summary.json that the table shows, so a result whose summary has
// a string where a number belongs is refused in one line, not drawn as NaN.
import { z } from 'zod';

const metricMap = z.record(z.string(), z.number());

/** The part of a run's summary.json the report uses (the trainer writes more). */
export const resultSummarySchema = z
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

export type ResultSummary = z.infer<typeof resultSummarySchema>;
