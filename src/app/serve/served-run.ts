// Opens the runs `peft serve` answers for: each run's model through the
// inference path `peft predict` uses (`openPredictor`), its display name,
// and its test images (the split `peft eval` scores, from `openDatasets`).
// A run whose data cannot be opened is still served, without test images,
// and says why in a warning.
import { resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import type { Registry } from '../../core/registry/registry.js';
import { DisplayNames } from '../report/names.js';
import { openPredictor } from '../predict/open-predictor.js';
import { openDatasets, readRunSpec } from '../runs/run-spec.js';
import type { ServedRun } from './server.js';
import { testImageSource } from './test-images.js';

export interface OpenServedRunsOptions {
  /** 'best' (default), 'last', or a checkpoint directory, for every run. */
  checkpoint?: string;
  /** Called with one line for each run served without its test images. */
  warn?: (line: string) => void;
}

/** The runs, opened in order; on failure the ones already opened are disposed. */
export async function openServedRuns(registry: Registry, dirs: string[], options: OpenServedRunsOptions = {}): Promise<ServedRun[]> {
  if (dirs.length === 0) throw new PeftError('peft serve needs at least one run: --run DIR (repeatable)');
  const seen = new Set<string>();
  for (const d of dirs) {
    const abs = resolve(d);
    if (seen.has(abs)) throw new PeftError(`--run ${d} is given twice`);
    seen.add(abs);
  }
  const names = new DisplayNames(registry);
  const runs: ServedRun[] = [];
  try {
    for (const dir of dirs) {
      const spec = readRunSpec(dir);
      const predictor = await openPredictor(registry, { run: dir, checkpoint: options.checkpoint });
      const run: ServedRun = {
        label: predictor.label,
        description: `${names.baseline(spec.backbone.id)} ${names.encoder(spec.backbone.id, spec.backbone.preset)} + ${names.mode(spec.method.id)}`,
        predictor,
        multimask: predictor.multimask,
      };
      runs.push(run);
      try {
        const { val } = await openDatasets(spec);
        run.testImages = testImageSource(val);
      } catch (err) {
        if (!(err instanceof PeftError)) throw err;
        options.warn?.(`${dir}: served without test images (${err.message})`);
      }
    }
    return runs;
  } catch (err) {
    for (const r of runs) r.predictor.dispose();
    throw err;
  }
}
