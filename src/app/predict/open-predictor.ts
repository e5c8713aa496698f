// Opens a trained model for prediction, from either
//   a run folder: its run.json rebuilds the model exactly as `peft eval` does,
//     and a checkpoint of it is loaded ('best' by default, falling back to
//     'last'; or 'last', or a checkpoint folder);
//   an adapter folder (peftjs, or Hugging Face PEFT for a method with a codec)
//     on the base weights it was trained from (a checkpoint file): the
//     backbone is the one asked for, else the one the adapter records, else the
//     caller's default; its preset likewise, else the training preset.
// An adapter is a change to base weights, so it needs them: a run trained
// without --checkpoint (random, seeded base weights) is opened with its run.
import { basename, join, resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { ADAPTER_WEIGHTS_FILE, readAdapterConfig } from '../../core/io/adapter-files.js';
import { adapterMethod, detectAdapterFormat } from '../../core/io/hf-peft.js';
import { readSafetensors } from '../../core/io/safetensors.js';
import { loadBackboneWeights } from '../../core/peft/backbone-weights.js';
import { requireAdapterPlugins } from '../../core/plugins/require-plugins.js';
import { readProvenanceMetadata } from '../../core/registry/provenance.js';
import type { Registry } from '../../core/registry/registry.js';
import { refugeChannels } from '../data/refuge.js';
import { openRunModel } from '../runs/merge-run.js';
import { methodConfigForRun, trainingPreset } from '../runs/run-request.js';
import { composeRun, type RunSpec } from '../runs/run-spec.js';
import { BEST, LAST } from '../train/loop.js';
import { ModelPredictor } from './model-predictor.js';

/** A run folder and which of its checkpoints. */
export interface RunSource {
  run: string;
  /** 'best' (default; 'last' when the run has no best), 'last', or a checkpoint folder. */
  checkpoint?: string;
}

/** An adapter folder on base weights. */
export interface AdapterFolderSource {
  adapter: string;
  /** The base weights the adapter was trained on (.safetensors, .pt, .pth). */
  checkpoint: string;
  /** Backbone id; default: the one the adapter records, else `defaultBackbone`. */
  backbone?: string;
  /** Preset; default: the one a peftjs adapter records, else the backbone's training preset. */
  preset?: string;
  /** The input image size it was trained at (set through the key the backbone binds to `--image-size`). */
  imageSize?: number;
  /**
   * The classes the adapter's head was trained on, in order (a REFUGE run's:
   * cup, disc, its first two multimask outputs). An adapter folder does not
   * record them; default one class, the head's single mask.
   */
  classes?: string[];
}

export type PredictorSource = RunSource | AdapterFolderSource;

export interface OpenPredictorOptions {
  /** The backbone of an adapter that records none and is not told one (the CLI passes the built-in default). */
  defaultBackbone?: string;
}

/** The name of the single class of a model not told its classes. */
export const SINGLE_CLASS = 'foreground';

/** A run's target classes: as recorded, else its dataset kind's (REFUGE: cup, disc; ISIC: its one lesion class). */
export function runClasses(spec: Pick<RunSpec, 'dataset'>): string[] {
  if (spec.dataset.channels?.length) return [...spec.dataset.channels];
  // the ISIC loader's single channel (isic.ts)
  return spec.dataset.kind === 'refuge' ? [...refugeChannels] : ['lesion'];
}

/** Opens the model; `dispose()` it when done. */
export async function openPredictor(registry: Registry, source: PredictorSource, options: OpenPredictorOptions = {}): Promise<ModelPredictor> {
  return 'run' in source ? openRun(registry, source) : openAdapter(registry, source, options);
}

function openRun(registry: Registry, source: RunSource): ModelPredictor {
  const runDir = resolve(source.run);
  const { spec, peft, checkpoint } = openRunModel(registry, runDir, source.checkpoint ?? 'best');
  const which = checkpoint === join(runDir, BEST) ? 'best' : checkpoint === join(runDir, LAST) ? 'last' : checkpoint;
  try {
    return new ModelPredictor(peft, {
      label: `${source.run} (${which})`,
      classes: runClasses(spec),
      evalPrompts: { mode: spec.options.prompt, seed: spec.options.seed, batch: spec.options.batch, outSize: spec.outSize },
      describe: { run: runDir, checkpoint, backbone: spec.backbone.id, preset: spec.backbone.preset, method: spec.method.id, imageSize: spec.imageSize },
    });
  } catch (err) {
    peft.dispose();
    throw err;
  }
}

/** The backbone (id, preset) an adapter folder records, where it does. */
function recordedBackbone(dir: string): { id?: string; preset?: string } {
  if (detectAdapterFormat(dir) === 'peftjs') {
    const b = readAdapterConfig(dir).backbone;
    return b ? { id: b.id, preset: b.preset } : {};
  }
  const weights = join(dir, ADAPTER_WEIGHTS_FILE);
  return { id: readProvenanceMetadata(readSafetensors(weights).metadata, weights).backbone };
}

function openAdapter(registry: Registry, source: AdapterFolderSource, options: OpenPredictorOptions): ModelPredictor {
  const dir = resolve(source.adapter);
  if (!source.checkpoint) throw new PeftError(`adapter ${source.adapter}: give the base weights it was trained on (--checkpoint FILE); a run trained without --checkpoint is opened with --run DIR`);
  requireAdapterPlugins(registry, dir);
  const recorded = recordedBackbone(dir);
  const id = source.backbone ?? recorded.id ?? options.defaultBackbone;
  if (!id) throw new PeftError(`adapter ${source.adapter} does not record its backbone: name it (--backbone)`);
  const def = registry.backbone(id);
  // a recorded preset belongs to the recorded backbone only
  const preset = source.preset ?? (recorded.id === def.id ? recorded.preset : undefined) ?? trainingPreset(def);
  const sizeKey = def.flagKeys?.['image-size'];
  if (source.imageSize !== undefined && !sizeKey) throw new PeftError(`--image-size does not apply to backbone '${def.id}' (it binds no key to it; set its size through a preset)`);
  const backbone = registry.createBackbone(def.id, preset, source.imageSize !== undefined ? { [sizeKey!]: source.imageSize } : {});
  try {
    loadBackboneWeights(backbone, def, resolve(source.checkpoint));
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
  let fromAdapter;
  try {
    fromAdapter = adapterMethod(dir, { sites: backbone.sites(), decoderPath: backbone.decoderPath }, registry);
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
  // the adapter's config, validated and completed as a run's would be (nothing trains: no run binding)
  let config: Record<string, unknown>;
  try {
    config = methodConfigForRun(registry.method(fromAdapter.id), { id: fromAdapter.id }, undefined, fromAdapter.config).config;
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
  const peft = composeRun(registry, { method: { id: fromAdapter.id, config }, trainDecoder: fromAdapter.trainDecoder ?? true, adapter: dir }, backbone);
  try {
    return new ModelPredictor(peft, {
      label: source.adapter,
      classes: source.classes?.length ? source.classes : [SINGLE_CLASS],
      // no run to follow: one prompt stream per image, at the head's own output size
      evalPrompts: { mode: 'click', seed: 0, batch: 1, outSize: backbone.imageSize / 4 },
      describe: { adapter: dir, adapterName: basename(dir), format: fromAdapter.format, checkpoint: resolve(source.checkpoint), backbone: def.id, preset, method: fromAdapter.id, imageSize: backbone.imageSize },
    });
  } catch (err) {
    peft.dispose();
    throw err;
  }
}
