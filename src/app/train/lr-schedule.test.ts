import { describe, expect, it } from 'vitest';
import { checkLrSchedule, lrAt } from './lr-schedule.js';

describe('lr schedules', () => {
  it('constant keeps the rate', () => {
    for (const step of [1, 5, 10]) expect(lrAt('constant', 1e-3, step, 10)).toBe(1e-3);
  });

  it("cosine gives PyTorch's CosineAnnealingLR(T_max = steps) rates, step by step", () => {
    // torch.optim.lr_scheduler.CosineAnnealingLR(Adam(lr=1e-3), T_max=10): the rate of each of 10 steps (torch 1.13)
    const torch = [0.001, 0.0009755282581475768, 0.0009045084971874736, 0.0007938926261462366, 0.0006545084971874737, 0.0005, 0.00034549150281252633, 0.0002061073738537635, 9.549150281252634e-5, 2.4471741852423235e-5];
    torch.forEach((want, i) => expect(lrAt('cosine', 1e-3, i + 1, 10)).toBeCloseTo(want, 15));
  });

  it('cosine decreases, stays positive over the run, and a one-step run keeps the rate', () => {
    let prev = Infinity;
    for (let s = 1; s <= 500; s++) {
      const r = lrAt('cosine', 3e-3, s, 500);
      expect(r).toBeGreaterThan(0);
      expect(r).toBeLessThanOrEqual(prev);
      prev = r;
    }
    expect(lrAt('cosine', 3e-3, 1, 1)).toBe(3e-3);
  });

  it('unknown names are a one-line error naming the flag', () => {
    expect(checkLrSchedule('cosine')).toBe('cosine');
    expect(() => checkLrSchedule('linear')).toThrow("unknown --lr-schedule 'linear': choose constant, cosine");
  });
});
