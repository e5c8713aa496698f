// Loading official checkpoints into a backbone: `.safetensors` or PyTorch's
// zip `.pt`/`.pth`, keyed as the backbone's official state dict. Strict: a
// checkpoint that does not fit the preset is an error naming the first
// mismatches, and nothing is loaded.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { briefValue } from '../text.js';
import { checkpointToTensors, loadCheckpoint } from '../io/torch-checkpoint.js';
import { describeReport, type StateDictReport } from '../nn/module.js';
import type { Backbone } from './backbone.js';
import type { BackboneDefinition } from '../registry/definitions.js';

export interface LoadWeightsOptions {
  /** Allow missing/unexpected keys (the report is returned). Default false. */
  partial?: boolean;
}

/**
 * Loads a checkpoint file into the backbone's model (before any PEFT
 * injection). `definition` is the backbone's registered definition: the
 * checkpoint keys its `isDerivedCheckpointKey` names (values the model
 * computes itself, which some official checkpoints persist) are skipped.
 */
export function loadBackboneWeights(
  backbone: Backbone,
  definition: Pick<BackboneDefinition, 'isDerivedCheckpointKey'>,
  path: string,
  options: LoadWeightsOptions = {},
): StateDictReport {
  const entries = loadCheckpoint(path);
  const derived = definition.isDerivedCheckpointKey;
  if (derived) for (const key of [...entries.keys()]) if (derived(key)) entries.delete(key);
  if (entries.size === 0) throw new PeftError(`${path}: the checkpoint holds no tensors`);
  const own = new Map(backbone.model.namedTensors());
  const overlap = [...entries.keys()].filter((k) => own.has(k)).length;
  if (overlap === 0) {
    const sample = [...entries.keys()].slice(0, 3).map((k) => briefValue(k, 120)).join(', ');
    throw new PeftError(`${path}: no key matches backbone '${backbone.id}' (the file has e.g. ${sample}; expected e.g. ${[...own.keys()].slice(0, 2).join(', ')})`);
  }
  const fits = `is this a checkpoint for ${backbone.id} preset '${backbone.preset}'?`;
  // keys and shapes are checked on the file's entries, before any becomes a tensor: thousands of keys
  // the model does not have cost nothing to refuse, and a partial load makes tensors only of what it loads
  const report: StateDictReport = { missing: [], unexpected: [], mismatched: [], loaded: 0 };
  for (const [name, p] of own) if (!entries.has(name) && !p.optional) report.missing.push(name);
  for (const [key, raw] of entries) {
    const p = own.get(key);
    if (!p) report.unexpected.push(key);
    else if (p.shape.length !== raw.shape.length || p.shape.some((d, i) => d !== raw.shape[i])) report.mismatched.push({ key, expected: [...p.shape], got: [...raw.shape] });
  }
  if (!options.partial && report.missing.length + report.unexpected.length + report.mismatched.length > 0) {
    throw new PeftError(`${describeReport(report, path)} — ${fits}`);
  }
  for (const key of [...report.unexpected, ...report.mismatched.map((m) => m.key)]) entries.delete(key);
  const tensors = checkpointToTensors(entries);
  try {
    const loaded = backbone.model.loadStateDict(tensors, { strict: !options.partial, source: path });
    return { ...loaded, unexpected: report.unexpected, mismatched: report.mismatched };
  } catch (err) {
    if (err instanceof PeftError) throw new PeftError(`${err.message} — ${fits}`);
    throw err;
  } finally {
    tf.dispose([...tensors.values()]);
  }
}
