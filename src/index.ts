// The public API of peftjs. Plugins (built-in and external) import only this.
import 'reflect-metadata';

export * as tf from '@tensorflow/tfjs';
export * from './core/errors.js';
export * from './core/backend.js';
export * from './core/nn/index.js';
export * from './core/nn/interpolate.js';
export * from './core/io/safetensors.js';
export * from './core/io/atomic.js';
export * from './core/registry/registry.js';
export * from './core/registry/definitions.js';
export * from './core/registry/config.js';
export * from './core/registry/closest.js';
export * from './core/peft/injection-site.js';
export * from './core/peft/hookable-block.js';
export * from './core/peft/backbone.js';
export * from './core/peft/layer-injector.js';
export * from './core/peft/compose.js';
export * from './core/peft/site-selector.js';
export * from './core/segment/types.js';
export * from './core/segment/segmentation-backbone.js';
export * from './core/parity/index.js';
export { z } from 'zod';
export * from './core/segment/sam-head.js';
export * from './core/segment/sam-mask-head-parity.js';
export * from './core/io/torch-checkpoint.js';
