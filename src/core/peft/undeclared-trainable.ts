// Which trainable tensors a composed model has that it should not: compose
// freezes the backbone, so after injection only the method's own tensors, the
// base tensors it declares in `trainableExtras(model)` (LoRA's bias modes) and
// the decoder (when it trains) may train. `peft plan` and `peft train` warn
// about the rest; the law suite (src/core/testing/trainable-set.ts) fails on it.
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import type { LayerInjector } from './layer-injector.js';

/** What these checks read of a composed model (a PeftModel is one). */
export interface ComposedModel {
  readonly model: Module;
  readonly method: LayerInjector;
  /** Names of the tensors the method added. */
  readonly methodKeys: string[];
  readonly backbone: { readonly decoderPath: string };
  trainable(): [string, Parameter][];
}

/**
 * The base tensors the method declares it trains (`trainableExtras`), checked:
 * a list of names of tensors the composed model has and the method did not
 * add; otherwise `problem` names the bad declaration.
 */
export function declaredExtras(peft: ComposedModel): { extras: Set<string>; problem?: string } {
  const declare = peft.method.trainableExtras;
  if (!declare) return { extras: new Set() };
  let names: unknown;
  try {
    names = declare.call(peft.method, peft.model);
  } catch (err) {
    return { extras: new Set(), problem: `trainableExtras(model) threw: ${(err as Error).message}` };
  }
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    return { extras: new Set(), problem: 'trainableExtras(model) must return a list of tensor names' };
  }
  const tensors = new Set([...peft.model.namedTensors()].map(([k]) => k));
  const own = new Set(peft.methodKeys);
  for (const n of names as string[]) {
    if (!tensors.has(n)) return { extras: new Set(), problem: `trainableExtras(model) names '${n}', which is not a tensor of the composed model` };
    if (own.has(n)) return { extras: new Set(), problem: `trainableExtras(model) names '${n}', which is the method's own tensor, not a base one` };
  }
  return { extras: new Set(names as string[]) };
}

/** Trainable parameters that are neither the method's, nor declared extras, nor (when it trains) the decoder's. */
export function unexpectedTrainable(peft: ComposedModel, extras: Set<string>, decoderTrains: boolean): string[] {
  const own = new Set(peft.methodKeys);
  const decoder = `${peft.backbone.decoderPath}.`;
  return peft
    .trainable()
    .map(([k]) => k)
    .filter((k) => !own.has(k) && !extras.has(k) && !(decoderTrains && k.startsWith(decoder)));
}

