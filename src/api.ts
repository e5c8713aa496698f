// The values of peftjs's public API: what `import * as peftjs from 'peftjs'`
// gives, and what the host hands every plugin as `register(registry, peftjs)`.
// src/index.ts re-exports all of it, with the plugin contract's types; add
// new exports here (src/plugin-api.ts types the API as `typeof` this module).
import 'reflect-metadata';

export * as tf from '@tensorflow/tfjs';
export { z } from 'zod';
/** fast-check, for a plugin's own laws (`MethodDefinition.laws`): the host's copy, as with tf and z. */
export { default as fc } from 'fast-check';
export * from './core/errors.js';
export * from './core/text.js';
export * from './core/patterns.js';
export * from './core/io/read-regular-file.js';
export * from './app/backend.js';
export * from './core/nn/index.js';
export * from './core/nn/interpolate.js';
export * from './core/nn/sensitivity-ema.js';
export * from './core/io/safetensors.js';
export * from './core/io/atomic.js';
/** The exclusive lock of a folder (a run folder while it trains): `acquireFolderLock`, its holder, staleness. */
export * from './core/io/folder-lock.js';
export * from './core/io/torch-checkpoint.js';
export * from './core/io/adapter-files.js';
export * from './core/io/hf-peft.js';
export * from './core/io/hf-peft-codec.js';
export * from './core/registry/registry.js';
export * from './core/registry/definitions.js';
export * from './core/registry/config.js';
export * from './core/registry/closest.js';
export * from './core/registry/provenance.js';
export * from './core/plugins/index.js';
export * from './core/peft/injection-site.js';
export * from './core/peft/hookable-block.js';
export * from './core/peft/backbone.js';
export * from './core/peft/layer-injector.js';
export * from './core/peft/compose.js';
export * from './core/peft/site-selector.js';
export * from './core/peft/fold.js';
export * from './app/runs/merge-run.js';
export * from './core/segment/types.js';
export * from './core/segment/segmentation-backbone.js';
export * from './core/segment/sam-head.js';
export * from './core/segment/sam-mask-head-parity.js';
export * from './core/parity/index.js';
export * from './core/testing/index.js';
export * from './app/data/index.js';
export * from './app/train/prompts.js';
export * from './app/train/losses.js';
export * from './app/train/metrics.js';
/** Inference with a trained model: `openPredictor`, the `Predictor` contract, `peft predict`'s `predictImages`. */
export * from './app/predict/index.js';
export * from './accel/kernels/index.js';
