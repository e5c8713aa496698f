// Evaluates a trained run: rebuild its model from run.json, load a checkpoint
// (the best by default), score the validation (or another) split.
import { join } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { loadAnyAdapter } from '../../core/io/hf-peft.js';
import type { Registry } from '../../core/registry/registry.js';
import { checkpointDir } from '../train/checkpoint.js';
import { evaluate, type EvalResult } from '../train/evaluate.js';
import { buildPeftModel, openDatasets, readRunSpec, requireRunPlugins, type RunSpec } from './run-spec.js';
import { BEST, LAST } from '../train/loop.js';
import { MAX_BATCH } from './run-folder-schema.js';

export interface EvaluateRunOptions {
  /** 'best' (default), 'last', or a checkpoint directory. */
  checkpoint?: string;
  /** Score this adapter folder (peftjs or Hugging Face PEFT) instead of a checkpoint of the run. */
  adapter?: string;
  /** Another dataset root / CSV to score instead of the run's validation split. */
  dataPath?: string;
  batch?: number;
}

export async function evaluateRun(registry: Registry, runDir: string, options: EvaluateRunOptions = {}): Promise<{ spec: RunSpec; result: EvalResult; checkpoint: string }> {
  if (options.batch !== undefined && !(Number.isSafeInteger(options.batch) && options.batch >= 1 && options.batch <= MAX_BATCH)) {
    throw new PeftError(`--batch must be an integer from 1 to ${MAX_BATCH}, got ${options.batch}`);
  }
  const spec = readRunSpec(runDir);
  requireRunPlugins(registry, runDir, spec);
  const which = options.checkpoint ?? 'best';
  const wanted = which === 'best' ? join(runDir, BEST) : which === 'last' ? join(runDir, LAST) : which;
  const dir = options.adapter ?? checkpointDir(wanted) ?? (which === 'best' ? checkpointDir(join(runDir, LAST)) : undefined);
  if (!dir) throw new PeftError(`${runDir}: no checkpoint '${which}' to evaluate`);
  const peft = buildPeftModel(registry, spec);
  try {
    loadAnyAdapter(dir, { model: peft.model, method: peft.method, methodKeys: peft.methodKeys, backbone: peft.backbone }, registry);
    const evalSpec: RunSpec = options.dataPath ? { ...spec, dataset: { ...spec.dataset, path: options.dataPath, valPath: spec.dataset.kind === 'isic' ? options.dataPath : spec.dataset.valPath } } : spec;
    const { val } = await openDatasets(evalSpec);
    peft.model.eval();
    const result = await evaluate(peft, val, { batch: options.batch ?? spec.options.batch, prompt: spec.options.prompt, seed: spec.options.seed, loss: spec.options.loss });
    return { spec, result, checkpoint: dir };
  } finally {
    peft.dispose();
  }
}
