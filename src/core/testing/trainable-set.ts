// What may train after compose, and what a method must not copy: the checks
// behind the law "only the method's own tensors train". compose freezes the
// whole backbone, then the method injects its layers; afterwards the trainable
// set must be exactly
//   the method's own (new) parameters
//   + the decoder's, when it trains
//   + the base tensors the injector declares in `trainableExtras(model)`
//     (LoRA's bias modes).
// A layer that sets `base.weight.trainable = true` would silently train the
// backbone and save it in the adapter; one that copies a base weight into a
// tensor of its own would do the same under another name. Both are named here.
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import type { PeftModel } from '../peft/compose.js';
import { declaredExtras, unexpectedTrainable } from '../peft/undeclared-trainable.js';

export { declaredExtras, unexpectedTrainable };
import { sameBytes, type snapshot } from './subject.js';

/** The backbone's tensors before compose: by name, the parameter (for identity and its flag after compose) and its bytes. */
export type BaseTensors = Map<string, { param: Parameter; shape: number[]; bytes: Uint8Array }>;

/** Records the backbone's tensors; call before `compose`. */
export function baseTensors(model: Module, bytes: ReturnType<typeof snapshot>): BaseTensors {
  const out: BaseTensors = new Map();
  for (const [name, param] of model.namedTensors()) {
    const b = bytes.get(name);
    if (b) out.set(name, { param, ...b });
  }
  return out;
}

/** `'a' [2,4], 'b' [3]` (at most `max`, then "and N more"). */
export function listTensors(names: string[], shapeOf: (name: string) => number[] | undefined, max = 4): string {
  const shown = names.slice(0, max).map((n) => `'${n}'${shapeOf(n) ? ` [${shapeOf(n)!.join(',')}]` : ''}`);
  return names.length > max ? `${shown.join(', ')} and ${names.length - max} more` : shown.join(', ');
}

/** Whether a float32/int32 buffer holds at least two different 4-byte values. */
function varies(bytes: Uint8Array): boolean {
  for (let i = 4; i + 4 <= bytes.length; i += 4) {
    for (let j = 0; j < 4; j++) if (bytes[i + j] !== bytes[j]) return true;
  }
  return false;
}

/**
 * Method tensors that copy a frozen base tensor: same shape, the same bytes,
 * not all one value (zeros or ones are an initialisation, not a copy).
 * `now` is a snapshot after compose; pairs [method tensor, base tensor].
 */
export function copiedBaseTensors(peft: PeftModel, base: BaseTensors, now: ReturnType<typeof snapshot>): [string, string][] {
  const out: [string, string][] = [];
  for (const k of peft.methodKeys) {
    const mine = now.get(k);
    if (!mine || !varies(mine.bytes)) continue;
    for (const [name, b] of base) {
      if (b.param.trainable) continue;
      if (b.shape.join(',') !== mine.shape.join(',')) continue;
      if (sameBytes(b.bytes, mine.bytes)) {
        out.push([k, name]);
        break;
      }
    }
  }
  return out;
}

/**
 * The first thing wrong with the trainable set of a freshly composed model,
 * as one message naming the tensors, or undefined. `base` was recorded before
 * compose, `now` is a snapshot after.
 */
export function trainableSetProblem(peft: PeftModel, base: BaseTensors, now: ReturnType<typeof snapshot>, decoderTrains: boolean): string | undefined {
  const { extras, problem } = declaredExtras(peft);
  if (problem) return problem;
  const shapeOf = (n: string) => now.get(n)?.shape;
  const unexpected = unexpectedTrainable(peft, extras, decoderTrains);
  if (unexpected.length) {
    return (
      `base tensor(s) trainable after compose: ${listTensors(unexpected, shapeOf)}. compose freezes the backbone, so the ` +
      `method unfroze them; only its own tensors train, plus base tensors its injector names in trainableExtras(model)`
    );
  }
  const copies = copiedBaseTensors(peft, base, now);
  if (copies.length) {
    const [copy, of] = copies[0]!;
    const more = copies.length > 1 ? ` (and ${copies.length - 1} more)` : '';
    return (
      `the method's tensor '${copy}' [${shapeOf(copy)!.join(',')}] is a copy of the frozen base tensor '${of}'${more}: ` +
      `it would be trained and saved in the adapter in the base's place; adopt the base tensor instead of copying it`
    );
  }
  return undefined;
}
