import type { Backbone } from '../peft/backbone.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import type { ParityKind } from '../parity/parity-kind.js';
import type { ConfigSchema } from './config.js';

/** A PEFT method plugin. */
export interface MethodDefinition<C = any> {
  id: string;
  summary: string;
  /** Other names accepted on the command line (e.g. the reference's `sam_lora`). */
  aliases?: string[];
  /** A zod object schema with defaults and descriptions. */
  schema: ConfigSchema<C>;
  /** Builds the injector from a validated config. */
  create(config: C): LayerInjector;
}

/** A backbone (model family) plugin. */
export interface BackboneDefinition<C = any> {
  id: string;
  summary: string;
  aliases?: string[];
  /** Named presets: partial configs merged over the schema's defaults. */
  presets: Record<string, Record<string, unknown>>;
  defaultPreset: string;
  schema: ConfigSchema<C>;
  create(config: C, preset: string): Backbone;
}

export type { ParityKind };
