// The plugin registry: backbones, methods and parity fixture kinds, registered
// under open string ids in a tsyringe container. Built-in and external plugins
// register through the same `register(registry)` call, and are handed this
// object, so a plugin with its own copy of tsyringe still lands here.
import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { PeftError } from '../errors.js';
import { parseConfig } from './config.js';
import type { BackboneDefinition, MethodDefinition } from './definitions.js';
import type { ParityKind } from '../parity/parity-kind.js';
import type { Backbone } from '../peft/backbone.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { closest } from './closest.js';
import { checkBackboneDefinition, checkMethodDefinition } from './check-definition.js';

export const BACKBONE = Symbol.for('peftjs.backbone');
export const METHOD = Symbol.for('peftjs.method');
export const PARITY_KIND = Symbol.for('peftjs.parity-kind');

/** What a plugin package exports: `register(registry)`. */
export type RegisterFunction = (registry: Registry) => void | Promise<void>;

export class Registry {
  readonly container: DependencyContainer;
  /** Which plugin (package or path) registered each id, for error messages. */
  private readonly origin = new Map<string, string>();
  /** Which plugin registered each definition object (backbones, methods, parity kinds), for rollback. */
  private readonly owner = new Map<object, string>();
  private currentOrigin = 'built-in';

  constructor(container: DependencyContainer = rootContainer.createChildContainer()) {
    this.container = container;
  }

  /** Runs a plugin's `register` with its registrations attributed to `origin`. */
  async load(origin: string, register: RegisterFunction): Promise<void> {
    const previous = this.currentOrigin;
    this.currentOrigin = origin;
    try {
      await register(this);
    } finally {
      this.currentOrigin = previous;
    }
  }

  registerBackbone(def: BackboneDefinition): void {
    this.checkNew('backbone', def.id, def.aliases, this.backbones());
    checkBackboneDefinition(def);
    if (!(def.defaultPreset in def.presets)) {
      throw new PeftError(`backbone '${def.id}': default preset '${def.defaultPreset}' is not one of its presets`);
    }
    this.container.register(BACKBONE, { useValue: def });
    this.owner.set(def, this.currentOrigin);
  }

  registerMethod(def: MethodDefinition): void {
    this.checkNew('method', def.id, def.aliases, this.methods());
    checkMethodDefinition(def);
    this.container.register(METHOD, { useValue: def });
    this.owner.set(def, this.currentOrigin);
  }

  registerParityKind(kind: ParityKind): void {
    if (this.parityKinds().some((k) => k.kind === kind.kind)) {
      throw new PeftError(`parity kind '${kind.kind}' is already registered`);
    }
    this.container.register(PARITY_KIND, { useValue: kind });
    this.owner.set(kind, this.currentOrigin);
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
    for (const [d, o] of [...this.owner]) if (o === origin) this.owner.delete(d);
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
    return def.create(config, name);
  }

  /** Builds a method's injector from a config, validated. */
  createMethod(id: string, config: Record<string, unknown> = {}): LayerInjector {
    const def = this.method(id);
    return def.create(parseConfig(def.schema, config, `method '${def.id}'`));
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

function matches(d: { id: string; aliases?: string[] }, id: string): boolean {
  const n = id.toLowerCase();
  return d.id.toLowerCase() === n || (d.aliases ?? []).some((a) => a.toLowerCase() === n);
}

/** `unknown method 'lroa' (known: adalora, adapter, lora); did you mean 'lora'?` */
export function unknownMessage(type: string, id: string, known: string[]): string {
  const guess = closest(id, known);
  const list = known.length ? [...known].sort().join(', ') : 'none registered';
  return `unknown ${type} '${id}' (known: ${list})${guess ? `; did you mean '${guess}'?` : ''}`;
}
