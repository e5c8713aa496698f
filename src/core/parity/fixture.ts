// A reference fixture: NAME.json (kind, config, tolerances) beside
// NAME.safetensors (param/, input/, output/, grad/, step/<t>/ tensors).
import * as tf from '@tensorflow/tfjs';
import { basename, join } from 'node:path';
import { PeftError } from '../errors.js';
import { readRegularTextFile } from '../io/read-regular-file.js';
import { readSafetensors, toTensor, type SafetensorsFile } from '../io/safetensors.js';

export interface FixtureJson {
  kind: string;
  config: Record<string, any>;
  atol: number;
  rtol: number;
  [extra: string]: unknown;
}

export class Fixture {
  readonly name: string;
  readonly json: FixtureJson;
  readonly file: SafetensorsFile;

  constructor(readonly jsonPath: string) {
    this.name = basename(jsonPath, '.json');
    const text = readRegularTextFile(jsonPath, 'json');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new PeftError(`${jsonPath}: cannot read fixture (${(err as Error).message.split('\n')[0]})`);
    }
    const j = parsed as FixtureJson;
    if (typeof j?.kind !== 'string') throw new PeftError(`${jsonPath}: fixture has no 'kind'`);
    this.json = { ...j, config: j.config ?? {}, atol: j.atol ?? 1e-5, rtol: j.rtol ?? 1e-5 };
    const st = join(jsonPath.slice(0, -'.json'.length) + '.safetensors');
    this.file = readSafetensors(st);
  }

  get kind(): string {
    return this.json.kind;
  }

  get config(): Record<string, any> {
    return this.json.config;
  }

  get dir(): string {
    return this.jsonPath.slice(0, this.jsonPath.length - basename(this.jsonPath).length);
  }

  has(key: string): boolean {
    return this.file.tensors.has(key);
  }

  keys(prefix = ''): string[] {
    return [...this.file.tensors.keys()].filter((k) => k.startsWith(prefix));
  }

  /** A new tensor of the stored value (the caller disposes it). */
  tensor(key: string): tf.Tensor {
    const raw = this.file.tensors.get(key);
    if (!raw) throw new PeftError(`${this.name}: fixture has no tensor '${key}'`);
    return toTensor(raw, `${this.name}: ${key}`);
  }

  /** Tensors under `prefix`, keyed without it (e.g. `param/` → the state dict). */
  group(prefix: string): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const k of this.keys(prefix)) out.set(k.slice(prefix.length), this.tensor(k));
    return out;
  }

  /** The keys a run must reproduce: every output/, grad/ and step/<t>/expect/ tensor. */
  expectedKeys(): string[] {
    return this.keys().filter((k) => k.startsWith('output/') || k.startsWith('grad/') || /^step\/\d+\/expect\//.test(k));
  }
}
