// Which gradients a kernel with a registered gradient (core lowRankLinear,
// bottleneckMlp) should make at once: guessed at the forward pass from what its
// inputs are (a frozen variable; a tensor computed, on the tape being recorded,
// from a trainable variable). Not exported from the package: the layers' own.
import * as tf from '@tensorflow/tfjs';

/** A frozen variable: its gradient is never asked for. */
export function isFrozen(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && !t.trainable;
}

interface TapeNode {
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
}

/** Per recorded tape: the ids of tensors computed from a trainable variable, and how many nodes were looked at. */
const reach = new WeakMap<object, { seen: number; ids: Set<number> }>();

/**
 * Whether the backward pass will likely ask for t's gradient: t is a trainable
 * variable or computed, on the tape being recorded, from one. A guess (the
 * tensors differentiated for are not known here): a wrong one costs one more
 * kernel call, or a gradient made and not used, never a wrong result.
 */
export function mayNeedGradient(t: tf.Tensor): boolean {
  if (t instanceof tf.Variable) return t.trainable;
  const tape = (tf.engine() as unknown as { state: { activeTape: TapeNode[] | null } }).state.activeTape;
  if (!tape) return false;
  let r = reach.get(tape);
  if (!r) reach.set(tape, (r = { seen: 0, ids: new Set() }));
  for (; r.seen < tape.length; r.seen++) {
    const node = tape[r.seen]!;
    let from = false;
    for (const name in node.inputs) {
      const u = node.inputs[name]!;
      if (r.ids.has(u.id) || (u instanceof tf.Variable && u.trainable)) {
        from = true;
        break;
      }
    }
    if (from) for (const o of node.outputs) r.ids.add(o.id);
  }
  return r.ids.has(t.id);
}
