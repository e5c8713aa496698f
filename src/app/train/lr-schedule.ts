// Learning-rate schedules, as functions of the global step (so a resumed run
// takes the same rates as an uninterrupted one). `constant` is the reference's
// (Medical-SAM-Adapter trains at a fixed Adam lr); `cosine` decays from lr to
// 0 over the run (PyTorch's CosineAnnealingLR with T_max = the run's steps and
// eta_min 0), which ends a short run on a settled model instead of one still
// taking full-size steps.
import { PeftError } from '../../core/errors.js';

export const lrSchedules = ['constant', 'cosine'] as const;
export type LrSchedule = (typeof lrSchedules)[number];

/** Checks a schedule name (as given to `--lr-schedule`). */
export function checkLrSchedule(name: string): LrSchedule {
  if (!(lrSchedules as readonly string[]).includes(name)) throw new PeftError(`unknown --lr-schedule '${name}': choose ${lrSchedules.join(', ')}`);
  return name as LrSchedule;
}

/** The rate of optimiser step `step` (1-based) of `totalSteps`. */
export function lrAt(schedule: LrSchedule, lr: number, step: number, totalSteps: number): number {
  if (schedule === 'constant' || totalSteps <= 1) return lr;
  // CosineAnnealingLR: the first step at the full rate, the last one just above 0
  const t = Math.min(Math.max(step - 1, 0), totalSteps);
  return (lr * (1 + Math.cos((Math.PI * t) / totalSteps))) / 2;
}
