// The plugin registry: backbones, methods and parity fixture kinds, registered
// under open string ids in a tsyringe container. Built-in and external plugins
// register through the same `register(registry, peftjs)` call, and are handed
// this object, so a plugin with its own copy of tsyringe still lands here.
// Every id is recorded with the plugin that provided it (provenance.ts).
import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { PeftError } from '../errors.js';
import { quoteName } from '../text.js';
import { parseConfig } from './config.js';
import type { BackboneDefinition, MethodDefinition } from './definitions.js';
import type { ParityKind } from '../parity/parity-kind.js';
import type { Backbone } from '../peft/backbone.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { closest } from './closest.js';
import { checkBackboneDefinition, checkMethodDefinition } from './check-definition.js';
import { BUILT_IN, peftjsVersion, recordMaker, type PluginProvenance } from './provenance.js';

export const BACKBONE = Symbol.for('peftjs.backbone');
export const METHOD = Symbol.for('peftjs.method');
export const PARITY_KIND = Symbol.for('peftjs.parity-kind');

/**
 * The public API of peftjs as a plugin receives it: the values of
 * `import * as peftjs from 'peftjs'` (classes, functions, `tf`, `z`…).
 * Declared empty here and completed in src/plugin-api.ts by interface
 * merging (`interface PeftjsApi extends typeof api`): this file is part of
 * that API, so naming the API's type here directly would be an import cycle.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface PeftjsApi {}

/**
 * What a plugin exports, and what the loader and `Registry.load` call:
 * `register(registry, peftjs)`, where `peftjs` is the host's public API (use
 * its `tf` and `z`, not copies of your own). May be async.
 */
export type RegisterFunction = (registry: Registry, peftjs: PeftjsApi) => void | Promise<void>;

export interface RegistryOptions {
  container?: DependencyContainer;
  /** The public API handed to every plugin `load` runs (the host passes `import * as api from 'peftjs'`). */
  api?: PeftjsApi;
}

// A parity kind is handed this registry; parity-kind.ts declares the type it
// receives and this file, which imports that one, completes it.
declare module '../parity/parity-kind.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface ParityRegistry extends Registry {}
}

/** Handed to plugins by a registry made without `api`: any use names the problem instead of failing on `undefined`. */
const NO_API = new Proxy(
  {},
  {
    get(_target, key) {
      if (typeof key === 'symbol' || key === 'then') return undefined;
      throw new PeftError(`the plugin used peftjs.${key}, but this registry was created without the host's public API (new Registry({ api }))`);
    },
  },
) as PeftjsApi;

export class Registry {
  readonly container: DependencyContainer;
  /** Which plugin (package or path) registered each id, for error messages. */
  private readonly origin = new Map<string, string>();
  /** Which plugin registered each definition object (backbones, methods, parity kinds), for rollback. */
  private readonly owner = new Map<object, string>();
  /** Which plugin provided each definition (absent for registrations under a plain origin name). */
  private readonly provided = new Map<object, PluginProvenance>();
  private currentOrigin = 'built-in';
  private currentPlugin: PluginProvenance | undefined;
  /** The public API handed to plugins. */
  readonly api: PeftjsApi;

  constructor(options: RegistryOptions = {}) {
    this.container = options.container ?? rootContainer.createChildContainer();
    this.api = options.api ?? NO_API;
  }

  /**
   * Runs a plugin's `register(this, api)` with its registrations attributed
   * to `plugin`: a `PluginProvenance` (recorded for each id it registers;
   * a built-in's `version` defaults to peftjs's), or a plain name for
   * messages only (tests, a plugin loaded by hand).
   */
  async load(plugin: string | PluginProvenance, register: RegisterFunction): Promise<void> {
    const previous = [this.currentOrigin, this.currentPlugin] as const;
    if (typeof plugin === 'string') {
      this.currentOrigin = plugin;
      this.currentPlugin = undefined;
    } else {
      this.currentPlugin = plugin.path === BUILT_IN && plugin.version === undefined ? { ...plugin, version: peftjsVersion() } : { ...plugin };
      this.currentOrigin = pluginOrigin(this.currentPlugin);
    }
    try {
      await register(this, this.api);
    } finally {
      [this.currentOrigin, this.currentPlugin] = previous;
    }
  }

  registerBackbone(def: BackboneDefinition): void {
    this.checkNew('backbone', def.id, def.aliases, this.backbones());
    checkBackboneDefinition(def);
    if (!(def.defaultPreset in def.presets)) {
      throw new PeftError(`backbone '${def.id}': default preset '${def.defaultPreset}' is not one of its presets`);
    }
    this.container.register(BACKBONE, { useValue: def });
    this.owned(def);
  }

  registerMethod(def: MethodDefinition): void {
    this.checkNew('method', def.id, def.aliases, this.methods());
    checkMethodDefinition(def);
    this.container.register(METHOD, { useValue: def });
    this.owned(def);
  }

  registerParityKind(kind: ParityKind): void {
    if (this.parityKinds().some((k) => k.kind === kind.kind)) {
      throw new PeftError(`parity kind '${kind.kind}' is already registered`);
    }
    this.container.register(PARITY_KIND, { useValue: kind });
    this.owned(kind);
  }

  private owned(def: object): void {
    this.owner.set(def, this.currentOrigin);
    if (this.currentPlugin) this.provided.set(def, this.currentPlugin);
  }

  /** The plugin that provided backbone or method `id` (an alias works too); undefined when unknown or not registered. */
  provenance(type: 'backbone' | 'method', id: string): PluginProvenance | undefined {
    const defs: { id: string; aliases?: string[] }[] = type === 'backbone' ? this.backbones() : this.methods();
    const def = defs.find((d) => matches(d, id));
    const p = def && this.provided.get(def);
    return p && { ...p };
  }

  /** Whether backbone or method `id` (or an alias) is registered. */
  has(type: 'backbone' | 'method', id: string): boolean {
    return (type === 'backbone' ? this.backbones() : this.methods()).some((d) => matches(d, id));
  }

  /** The ids `origin` registered, by kind. */
  registeredBy(origin: string): { backbones: string[]; methods: string[]; parityKinds: string[] } {
    const mine = <T extends object>(defs: T[]) => defs.filter((d) => this.owner.get(d) === origin);
    return {
      backbones: mine(this.backbones()).map((d) => d.id),
      methods: mine(this.methods()).map((d) => d.id),
      parityKinds: mine(this.parityKinds()).map((k) => k.kind),
    };
  }

  /**
   * Removes everything `origin` registered (rolls back a plugin that failed
   * half-way, or whose definitions are invalid); returns how many definitions
   * were removed. The others keep their order.
   */
  unregisterOrigin(origin: string): number {
    const kept: [symbol, object[]][] = [];
    let removed = 0;
    for (const token of [BACKBONE, METHOD, PARITY_KIND]) {
      const defs = this.all<object>(token);
      const keep = defs.filter((d) => this.owner.get(d) !== origin);
      removed += defs.length - keep.length;
      kept.push([token, keep]);
    }
    for (const [id, o] of [...this.origin]) if (o === origin) this.origin.delete(id);
    if (removed === 0) return 0;
    // tsyringe cannot drop one registration of a multi-registered token: re-register the rest
    this.container.reset();
    for (const [token, defs] of kept) for (const d of defs) this.container.register(token, { useValue: d });
    for (const [d, o] of [...this.owner]) {
      if (o !== origin) continue;
      this.owner.delete(d);
      this.provided.delete(d);
    }
    return removed;
  }

  backbones(): BackboneDefinition[] {
    return this.all<BackboneDefinition>(BACKBONE);
  }

  methods(): MethodDefinition[] {
    return this.all<MethodDefinition>(METHOD);
  }

  parityKinds(): ParityKind[] {
    return this.all<ParityKind>(PARITY_KIND);
  }

  originOf(id: string): string | undefined {
    return this.origin.get(id);
  }

  backbone(id: string): BackboneDefinition {
    return this.find('backbone', id, this.backbones());
  }

  method(id: string): MethodDefinition {
    return this.find('method', id, this.methods());
  }

  parityKind(kind: string): ParityKind | undefined {
    return this.parityKinds().find((k) => k.kind === kind);
  }

  /** Backbone or method by id (for `peft info`). */
  any(id: string): { type: 'backbone'; def: BackboneDefinition } | { type: 'method'; def: MethodDefinition } {
    const b = this.backbones().find((d) => matches(d, id));
    if (b) return { type: 'backbone', def: b };
    const m = this.methods().find((d) => matches(d, id));
    if (m) return { type: 'method', def: m };
    const known = [...this.backbones(), ...this.methods()].map((d) => d.id);
    throw new PeftError(unknownMessage('plugin', id, known));
  }

  /** Builds a backbone from a preset and overrides, validated. */
  createBackbone(id: string, preset?: string, overrides: Record<string, unknown> = {}): Backbone {
    const def = this.backbone(id);
    const name = preset ?? def.defaultPreset;
    const base = def.presets[name];
    if (!base) throw new PeftError(unknownMessage(`preset of backbone '${def.id}'`, name, Object.keys(def.presets)));
    const config = parseConfig(def.schema, { ...base, ...overrides }, `backbone '${def.id}' preset '${name}'`);
    const backbone = def.create(config, name);
    recordMaker(backbone, this.provided.get(def));
    return backbone;
  }

  /** Builds a method's injector from a config, validated. */
  createMethod(id: string, config: Record<string, unknown> = {}): LayerInjector {
    const def = this.method(id);
    const method = def.create(parseConfig(def.schema, config, `method '${def.id}'`));
    recordMaker(method, this.provided.get(def));
    return method;
  }

  private all<T>(token: symbol): T[] {
    return this.container.isRegistered(token) ? this.container.resolveAll<T>(token) : [];
  }

  private checkNew(type: string, id: string, aliases: string[] | undefined, existing: { id: string; aliases?: string[] }[]): void {
    if (typeof id !== 'string' || !/^[a-z0-9][a-z0-9_.-]*$/i.test(id)) {
      throw new PeftError(`${type} id ${JSON.stringify(id)} is not a valid id (letters, digits, '_', '-', '.')`);
    }
    for (const name of [id, ...(aliases ?? [])]) {
      const clash = existing.find((d) => matches(d, name));
      if (clash) {
        throw new PeftError(
          `${type} '${name}' from ${this.currentOrigin} is already registered by ${this.origin.get(clash.id) ?? 'built-in'}`,
        );
      }
    }
    this.origin.set(id, this.currentOrigin);
  }

  private find<T extends { id: string; aliases?: string[] }>(type: string, id: string, defs: T[]): T {
    const d = defs.find((x) => matches(x, id));
    if (d) return d;
    throw new PeftError(unknownMessage(type, id, defs.map((x) => x.id)));
  }
}

/** How messages name a plugin: `plugin 'peftjs-dora'`, `built-in plugin 'method-lora'`. */
export function pluginOrigin(p: Pick<PluginProvenance, 'name' | 'path'>): string {
  return p.path === BUILT_IN ? `built-in plugin '${p.name}'` : `plugin '${p.name}'`;
}

function matches(d: { id: string; aliases?: string[] }, id: string): boolean {
  const n = id.toLowerCase();
  return d.id.toLowerCase() === n || (d.aliases ?? []).some((a) => a.toLowerCase() === n);
}

/** `unknown method 'dorra' (known: dora, ia3); did you mean 'dora'?` */
export function unknownMessage(type: string, id: string, known: string[]): string {
  const guess = closest(id, known);
  const list = known.length ? [...known].sort().join(', ') : 'none registered';
  return `unknown ${type} ${quoteName(id)} (known: ${list})${guess ? `; did you mean '${guess}'?` : ''}`;
}
