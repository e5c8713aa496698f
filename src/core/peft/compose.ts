// compose(backbone, method): freeze the backbone, inject the method at the
// sites it selects, and report what trains.
import { PeftError } from '../errors.js';
import type { Parameter } from '../nn/parameter.js';
import type { Backbone } from './backbone.js';
import type { InjectionSite } from './injection-site.js';
import type { LayerInjector } from './layer-injector.js';
import { declaredExtras, unexpectedTrainable } from './undeclared-trainable.js';

export interface ComposeOptions {
  /** Train the mask decoder alongside the method (the reference does; default true). */
  trainDecoder?: boolean;
}

export interface ComposeReport {
  backbone: string;
  preset: string;
  method: string;
  sites: InjectionSite[];
  /** Parameters the method added (its formula's count). */
  methodParameters: number;
  trainableParameters: number;
  totalParameters: number;
  /** Weights + gradients + Adam's two moments of the trainable set, in bytes (float32). */
  estimatedTrainingBytes: number;
  /**
   * Base tensors that train although neither the method declares them
   * (`trainableExtras`) nor they are the decoder's while it trains: a method
   * that unfreezes or replaces base weights. `peft plan` and `peft train`
   * warn; `peft verify` fails.
   */
  undeclaredTrainable: string[];
}

export class PeftModel {
  constructor(
    readonly backbone: Backbone,
    readonly method: LayerInjector,
    readonly sites: InjectionSite[],
    /** Names of the parameters (and buffers) the method added (new tensors, whatever their names). */
    readonly methodKeys: string[],
    /** Whether compose set the mask decoder to train. */
    readonly decoderTrains = true,
  ) {}

  get model() {
    return this.backbone.model;
  }

  /** Parameters an optimiser updates, by name. */
  trainable(): [string, Parameter][] {
    return this.model.trainableParameters();
  }

  /** Frees the model's tensors and the method's own state. */
  dispose(): void {
    this.method.dispose?.();
    this.model.dispose();
  }

  report(): ComposeReport {
    const params = this.model.namedParameters();
    const keys = new Set(this.methodKeys);
    const total = params.reduce((n, [, p]) => n + p.size, 0);
    const trainable = params.filter(([, p]) => p.trainable).reduce((n, [, p]) => n + p.size, 0);
    const method = params.filter(([k]) => keys.has(k)).reduce((n, [, p]) => n + p.size, 0);
    return {
      backbone: this.backbone.id,
      preset: this.backbone.preset,
      method: this.method.id,
      sites: this.sites,
      methodParameters: method,
      trainableParameters: trainable,
      totalParameters: total,
      estimatedTrainingBytes: 4 * (total + 3 * trainable),
      undeclaredTrainable: this.undeclaredTrainable(),
    };
  }

  /** See `ComposeReport.undeclaredTrainable`; a method whose `trainableExtras` is itself wrong counts every non-method tensor. */
  undeclaredTrainable(): string[] {
    return unexpectedTrainable(this, declaredExtras(this).extras, this.decoderTrains);
  }
}

export function compose(backbone: Backbone, method: LayerInjector, options: ComposeOptions = {}): PeftModel {
  const model = backbone.model;
  model.requiresGrad(false);
  const before = new Set([...model.namedTensors()].map(([, p]) => p));
  const sites = method.select(backbone.sites());
  if (sites.length === 0) throw new PeftError(`method '${method.id}' selected no site of backbone '${backbone.id}'`);
  for (const site of sites) method.inject(model, site);
  if (options.trainDecoder ?? true) {
    for (const [name, p] of model.namedParameters()) if (name.startsWith(`${backbone.decoderPath}.`)) p.trainable = true;
  }
  const methodKeys = [...model.namedTensors()].filter(([, p]) => !before.has(p)).map(([k]) => k);
  return new PeftModel(backbone, method, sites, methodKeys, options.trainDecoder ?? true);
}
