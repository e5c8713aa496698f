// Loading official checkpoints into a backbone: `.safetensors` or PyTorch's
// zip `.pt`/`.pth`, keyed as the backbone's official state dict. Strict: a
// checkpoint that does not fit the preset is an error naming the first
// mismatches, and nothing is loaded.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { briefValue } from '../text.js';
import { checkpointToTensors, loadCheckpoint } from '../io/torch-checkpoint.js';
import type { StateDictReport } from '../nn/module.js';
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
  const own = new Set([...backbone.model.namedTensors()].map(([k]) => k));
  const overlap = [...entries.keys()].filter((k) => own.has(k)).length;
  if (overlap === 0) {
    const sample = [...entries.keys()].slice(0, 3).map((k) => briefValue(k, 120)).join(', ');
    throw new PeftError(`${path}: no key matches backbone '${backbone.id}' (the file has e.g. ${sample}; expected e.g. ${[...own].slice(0, 2).join(', ')})`);
  }
  const tensors = checkpointToTensors(entries);
  try {
    // strict load checks every key before assigning any, so a bad file leaves the model untouched
    return backbone.model.loadStateDict(tensors, { strict: !options.partial, source: path });
  } catch (err) {
    if (err instanceof PeftError) throw new PeftError(`${err.message} — is this a checkpoint for ${backbone.id} preset '${backbone.preset}'?`);
    throw err;
  } finally {
    tf.dispose([...tensors.values()]);
  }
}
