// A small PyTorch-like module tree: named parameters, named buffers and named
// children, with the dotted names PyTorch gives them, so official checkpoints
// load by name.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { briefValue } from '../text.js';
import { Parameter, type ParameterOptions } from './parameter.js';

export interface StateDictReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
  loaded: number;
}

export interface LoadOptions {
  /** Throw when anything is missing, unexpected or mismatched (default true). */
  strict?: boolean;
  /** Names the source in error messages (a file path). */
  source?: string;
}

export abstract class Module {
  training = false;
  private readonly ownParams = new Map<string, Parameter>();
  private readonly ownChildren = new Map<string, Module>();

  /** Adds (or replaces) a parameter or buffer called `name`; takes ownership of `value`. */
  registerParameter(name: string, value: tf.Tensor, options: ParameterOptions = {}): Parameter {
    if (name.includes('.')) throw new Error(`parameter name '${name}' must not contain '.'`);
    this.ownParams.get(name)?.dispose();
    const p = new Parameter(value, options);
    value.dispose();
    this.ownParams.set(name, p);
    return p;
  }

  /** Adopts an existing parameter under `name` (used when a wrapper takes over a layer's weights). */
  adoptParameter(name: string, p: Parameter): Parameter {
    this.ownParams.set(name, p);
    return p;
  }

  registerBuffer(name: string, value: tf.Tensor, options: { optional?: boolean } = {}): Parameter {
    return this.registerParameter(name, value, { buffer: true, optional: options.optional });
  }

  registerModule<M extends Module>(name: string, module: M): M {
    if (name.includes('.')) throw new Error(`module name '${name}' must not contain '.'`);
    this.ownChildren.set(name, module);
    return module;
  }

  /** This module's own parameter or buffer called `name`. */
  param(name: string): Parameter {
    const p = this.ownParams.get(name);
    if (!p) throw new Error(`${this.constructor.name} has no parameter '${name}'`);
    return p;
  }

  hasParam(name: string): boolean {
    return this.ownParams.has(name);
  }

  removeParameter(name: string): Parameter | undefined {
    const p = this.ownParams.get(name);
    this.ownParams.delete(name);
    return p;
  }

  child(name: string): Module | undefined {
    return this.ownChildren.get(name);
  }

  *namedChildren(): Iterable<[string, Module]> {
    yield* this.ownChildren.entries();
  }

  /** Every module below (and including) this one, with dotted paths; '' is this module. */
  *namedModules(prefix = ''): Iterable<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.ownChildren) {
      yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
    }
  }

  /** The module at a dotted path ('' is this module). */
  getModule(path: string): Module {
    if (path === '') return this;
    let m: Module = this;
    for (const part of path.split('.')) {
      const next = m.ownChildren.get(part);
      if (!next) throw new PeftError(`no module at '${path}' (no child '${part}')`);
      m = next;
    }
    return m;
  }

  /** Replaces the module at a dotted path; returns the one it replaced. */
  setModule(path: string, module: Module): Module {
    const cut = path.lastIndexOf('.');
    const parent = cut < 0 ? this : this.getModule(path.slice(0, cut));
    const name = cut < 0 ? path : path.slice(cut + 1);
    const old = parent.ownChildren.get(name);
    if (!old) throw new PeftError(`no module at '${path}'`);
    parent.ownChildren.set(name, module);
    return old;
  }

  /** Every parameter and buffer, in PyTorch's state-dict order (own first, then children). */
  *namedTensors(prefix = ''): Iterable<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [name, p] of this.walk(prefix)) {
      if (seen.has(p)) continue;
      seen.add(p);
      yield [name, p];
    }
  }

  private *walk(prefix: string): Iterable<[string, Parameter]> {
    for (const [name, p] of this.ownParams) yield [prefix ? `${prefix}.${name}` : name, p];
    for (const [name, child] of this.ownChildren) yield* child.walk(prefix ? `${prefix}.${name}` : name);
  }

  /** Parameters (not buffers), with PyTorch-style dotted names. */
  namedParameters(prefix = ''): [string, Parameter][] {
    return [...this.namedTensors(prefix)].filter(([, p]) => !p.buffer);
  }

  namedBuffers(prefix = ''): [string, Parameter][] {
    return [...this.namedTensors(prefix)].filter(([, p]) => p.buffer);
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  trainableParameters(): [string, Parameter][] {
    return this.namedParameters().filter(([, p]) => p.trainable);
  }

  /** The number of scalars in all parameters (not buffers). */
  parameterCount(filter: (p: Parameter) => boolean = () => true): number {
    return this.parameters().filter(filter).reduce((n, p) => n + p.size, 0);
  }

  /** Name → variable, parameters and buffers, as PyTorch's `state_dict()`. The tensors are live: do not dispose. */
  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, p] of this.namedTensors()) out.set(name, p.variable);
    return out;
  }

  /**
   * Assigns every matching entry and reports missing, unexpected and shape-mismatched
   * keys. Strict (the default) checks everything first and throws on any problem,
   * loading nothing, so a model is never half-loaded in silence.
   */
  loadStateDict(entries: Map<string, tf.Tensor> | Record<string, tf.Tensor>, options: LoadOptions = {}): StateDictReport {
    const strict = options.strict ?? true;
    const dict = entries instanceof Map ? entries : new Map(Object.entries(entries));
    const own = new Map(this.namedTensors());
    const report: StateDictReport = { missing: [], unexpected: [], mismatched: [], loaded: 0 };
    for (const [name, p] of own) if (!dict.has(name) && !p.optional) report.missing.push(name);
    for (const [name, t] of dict) {
      const p = own.get(name);
      if (!p) report.unexpected.push(name);
      else if (!sameShape(p.shape, t.shape)) report.mismatched.push({ key: name, expected: p.shape, got: t.shape });
    }
    const bad = report.missing.length + report.unexpected.length + report.mismatched.length;
    if (strict && bad > 0) throw new PeftError(describeReport(report, options.source));
    for (const [name, t] of dict) {
      const p = own.get(name);
      if (!p || !sameShape(p.shape, t.shape)) continue;
      tf.tidy(() => p.assign(t.dtype === p.dtype ? t : tf.cast(t, p.dtype)));
      report.loaded++;
    }
    return report;
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Freezes (or unfreezes) every parameter below this module. */
  requiresGrad(on: boolean): this {
    for (const p of this.parameters()) p.trainable = on;
    return this;
  }

  dispose(): void {
    for (const [, p] of this.namedTensors()) p.dispose();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** One line naming the first problems of a state-dict load. */
export function describeReport(r: StateDictReport, source?: string): string {
  const parts: string[] = [];
  // names come from checkpoint files: escaped and cut (core/text.ts)
  const few = (xs: string[]) => xs.slice(0, 3).map((x) => briefValue(x, 120)).join(', ') + (xs.length > 3 ? `, … (${xs.length} in all)` : '');
  if (r.mismatched.length) {
    parts.push(
      `shape mismatch: ${r.mismatched
        .slice(0, 3)
        .map((m) => `${briefValue(m.key, 120)} expected [${m.expected}] got [${m.got}]`)
        .join(', ')}${r.mismatched.length > 3 ? `, … (${r.mismatched.length} in all)` : ''}`,
    );
  }
  if (r.missing.length) parts.push(`missing: ${few(r.missing)}`);
  if (r.unexpected.length) parts.push(`unexpected: ${few(r.unexpected)}`);
  return `${source ? `${source}: ` : ''}state dict does not fit the model (${parts.join('; ')})`;
}
