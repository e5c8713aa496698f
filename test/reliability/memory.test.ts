// Memory over a long run: scripts/reliability/memory.mjs trains the tiny SAM
// preset (64 px, LoRA and the decoder) on the wasm backend through `trainRun`
// with validations and a checkpoint every epoch; after a warm-up the live
// tensor count must not move and the wasm heap must not grow, and the peak
// resident memory of the whole run (the kernel's VmHWM, not samples) stays
// under 512 MB (about 225 MB measured). It runs in its
// own process (the wasm backend, and a full GC before each JS-heap sample,
// which the test workers, on the cpu backend, cannot give it), from the build
// in dist/ like the CLI tests.
//
// Budget: PEFT_MEMORY_STEPS (default 200, warm-up 50); `npm run reliability`
// runs 1,000 steps after a 100-step warm-up and keeps the figures.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { budget } from '../support/cli-runs.js';

const script = fileURLToPath(new URL('../../scripts/reliability/memory.mjs', import.meta.url));
const STEPS = budget('PEFT_MEMORY_STEPS', 200);
const WARMUP = Math.min(100, Math.max(20, Math.floor(STEPS / 4)));
const work = mkdtempSync(join(tmpdir(), 'peft-memory-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('memory over a long training run (wasm)', () => {
  it(`${STEPS} steps: the live tensor count stays fixed and the wasm heap does not grow after step ${WARMUP}; peak RSS under 512 MB`, () => {
    const json = join(work, 'memory.json');
    const r = spawnSync(process.execPath, [script, '--steps', String(STEPS), '--warmup', String(WARMUP), '--json', json], { encoding: 'utf8', timeout: 1_800_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(json, 'utf8')) as { steps: number; backend: string; problems: string[]; tensorsAfterWarmup: [number, number]; peakRssMB: number | null };
    expect(result.problems).toEqual([]);
    expect(result.backend).toBe('wasm');
    expect(result.steps).toBe(STEPS);
    expect(result.tensorsAfterWarmup[0]).toBe(result.tensorsAfterWarmup[1]);
    if (process.platform === 'linux') expect(result.peakRssMB).toBeLessThan(512);
  }, 1_800_000);
});
