// Durations as the progress line and the summary print them, at the rounding
// boundaries (the ETA once read "1m60s").
import { describe, expect, it } from 'vitest';
import { duration } from './progress.js';

describe('duration', () => {
  it('rounds once, then splits into minutes and seconds or hours and minutes', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [0.4, '0s'],
      [59.4, '59s'],
      [59.5, '1m00s'],
      [60, '1m00s'],
      [89.5, '1m30s'],
      [119.4, '1m59s'],
      [119.6, '2m00s'],
      [3599.4, '59m59s'],
      [3599.5, '1h00m'],
      [3600, '1h00m'],
      [3629.9, '1h00m'],
      [3630, '1h01m'],
      [7199.9, '2h00m'],
      [86399, '24h00m'],
    ];
    for (const [s, text] of cases) expect(duration(s), String(s)).toBe(text);
  });

  it('never prints 60 in a part', () => {
    for (let s = 0; s < 4 * 3600; s += 0.1) expect(duration(s), String(s)).not.toMatch(/(?<!\d)60[sm]/);
  });

  it('an unknown ETA is --', () => {
    expect(duration(Number.NaN)).toBe('--');
    expect(duration(Number.POSITIVE_INFINITY)).toBe('--');
  });
});
