// What a training run is made of, written to `run.json` so that `--resume`,
// `peft eval` and `peft report` rebuild exactly the same model and data.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import type { Dataset } from '../data/dataset.js';
import { openIsic } from '../data/isic.js';
import { openRefuge } from '../data/refuge.js';
import { ensureDefaultDataset } from '../data/synth-output.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { loadAnyAdapter } from '../../core/io/hf-peft.js';
import { loadBackboneWeights } from '../../core/peft/backbone-weights.js';
import type { Backbone } from '../../core/peft/backbone.js';
import { compose, type PeftModel } from '../../core/peft/compose.js';
import { checkMethodFits } from '../../core/peft/method-fits.js';
import { seedEverything } from '../../core/nn/init.js';
import type { Registry } from '../../core/registry/registry.js';
import { parseUsedPlugins, type UsedPlugins } from '../../core/registry/provenance.js';
import { pluginNeeds, requirePlugins } from '../../core/plugins/require-plugins.js';
import type { TrainOptions } from '../train/loop.js';
import { checkBackboneOverrides, parseRunFile, runSpecSchema } from './run-folder-schema.js';

export const RUN_FILE = 'run.json';

export interface RunSpec {
  version: 1;
  createdAt: string;
  backbone: { id: string; preset: string; overrides: Record<string, unknown> };
  method: { id: string; config: Record<string, unknown> };
  /** Official weights loaded before injection (absent: random initialisation). */
  checkpoint?: string;
  /** An adapter (peftjs or Hugging Face PEFT) the method's tensors start from. */
  adapter?: string;
  trainDecoder: boolean;
  imageSize: number;
  outSize: number;
  /** `path` null: the embedded synthetic REFUGE-layout data. */
  dataset: { kind: 'refuge' | 'isic'; path: string | null; valPath?: string | null; channels?: string[] };
  augment: boolean;
  options: TrainOptions;
  command?: string;
  /** The plugins (name, version, path) that provided the backbone and the method; absent in runs from before peftjs recorded them. */
  plugins?: UsedPlugins;
}

/** Builds backbone (+ official weights) and method, and composes them. */
export function buildPeftModel(registry: Registry, spec: RunSpec): PeftModel {
  return composeRun(registry, spec, buildBackbone(registry, spec));
}

/**
 * The run's backbone with its official weights, seeded first: the base weights
 * of a run without --checkpoint are its seeded initialisation, so eval and
 * resume rebuild exactly the same ones. Nothing may draw initial values
 * between this and `composeRun` (data loading does not).
 */
export function buildBackbone(registry: Registry, spec: Pick<RunSpec, 'backbone' | 'checkpoint' | 'options'>): Backbone {
  seedEverything(spec.options.seed);
  const def = registry.backbone(spec.backbone.id);
  checkBackboneOverrides(def, spec.backbone.overrides);
  const backbone = registry.createBackbone(def.id, spec.backbone.preset, spec.backbone.overrides);
  try {
    if (spec.checkpoint) loadBackboneWeights(backbone, def, spec.checkpoint);
    return backbone;
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
}

/**
 * Composes the run's method onto `backbone` and loads the adapter the run
 * starts from; disposes the backbone on failure. The method's size is checked
 * against the sites it selects before it allocates anything (`checkMethodFits`,
 * as `peft train` and `peft plan` do), whether its config came from flags, a
 * run.json or an adapter folder.
 */
export function composeRun(registry: Registry, spec: { method: RunSpec['method']; trainDecoder: boolean; adapter?: string }, backbone: Backbone): PeftModel {
  try {
    const method = registry.createMethod(spec.method.id, spec.method.config);
    checkMethodFits(method, method.select(backbone.sites()), registry.method(spec.method.id));
    const peft = compose(backbone, method, { trainDecoder: spec.trainDecoder });
    if (spec.adapter) loadAnyAdapter(spec.adapter, peft, registry);
    return peft;
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
}

/** Opens the training and validation sets. REFUGE validates on Validation-400 if present, else Test-400. */
export async function openDatasets(spec: Pick<RunSpec, 'dataset' | 'imageSize' | 'outSize' | 'augment'>): Promise<{ train: Dataset; val: Dataset; root: string }> {
  const common = { imageSize: spec.imageSize, outSize: spec.outSize };
  if (spec.dataset.kind === 'isic') {
    if (!spec.dataset.path) throw new PeftError('--dataset isic needs --data-path (the training CSV)');
    const train = await openIsic(spec.dataset.path, { ...common, augment: spec.augment });
    const val = spec.dataset.valPath ? await openIsic(spec.dataset.valPath, common) : train;
    return { train, val, root: spec.dataset.path };
  }
  const root = spec.dataset.path ?? (await ensureDefaultDataset());
  const train = await openRefuge(root, { ...common, split: 'train', augment: spec.augment });
  const valSplit = existsSync(join(root, 'Validation-400')) ? 'val' : 'test';
  const val = await openRefuge(root, { ...common, split: valSplit });
  return { train, val, root };
}

export function writeRunSpec(dir: string, spec: RunSpec): void {
  writeFileAtomic(join(dir, RUN_FILE), `${JSON.stringify(spec, null, 2)}\n`);
}

/**
 * Reads and validates `dir/run.json` (run-folder-schema.ts: every key's type
 * and the bounds `peft train` puts on its flags): the one reader of every
 * command that opens a run folder.
 */
export function readRunSpec(dir: string): RunSpec {
  const path = join(resolve(dir), RUN_FILE);
  if (!existsSync(path)) throw new PeftError(`${dir}: not a run directory (no ${RUN_FILE})`);
  const text = readRegularTextFile(path, 'json');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const spec = parseRunFile(runSpecSchema, raw, path) as unknown as RunSpec;
  if (spec.plugins !== undefined) spec.plugins = parseUsedPlugins(spec.plugins, `${path}: 'plugins'`);
  return spec;
}

/** Refuses, naming the plugin and how to load it, a run whose backbone or method no loaded plugin registers. */
export function requireRunPlugins(registry: Registry, runDir: string, spec: RunSpec): void {
  requirePlugins(registry, `run '${runDir}'`, pluginNeeds({ backbone: spec.backbone.id, method: spec.method.id }, spec.plugins));
}
