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

/**
 * Registers the gradient of a kernel whose backward kernel makes several
 * gradients in one call: the ones `likely(attrs)` names (predicted at the
 * forward pass) are made at once when the engine asks for the first; one it
 * asks for that was not predicted is made then, by itself. `inputs` maps each
 * forward input to its gradient's name; `make(dy, saved, attrs, want)` returns
 * the gradients named in `want` (any not used is freed with the backward
 * pass's scope).
 */
export function registerPathGradient<G extends string, A>(
  kernelName: string,
  inputsToSave: string[],
  inputs: Record<string, G>,
  likely: (attrs: A) => G[],
  make: (dy: tf.Tensor2D, saved: tf.Tensor2D[], attrs: A, want: Set<G>) => Map<G, tf.Tensor>,
): void {
  tf.registerGradient({
    kernelName,
    inputsToSave,
    outputsToSave: [false, true],
    gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], rawAttrs: tf.NamedAttrMap) => {
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D;
      const attrs = rawAttrs as unknown as A;
      const s = saved as tf.Tensor2D[];
      const made = make(dy, s, attrs, new Set(likely(attrs)));
      const get = (g: G) => () => made.get(g) ?? make(dy, s, attrs, new Set([g])).get(g)!;
      return Object.fromEntries(Object.entries(inputs).map(([input, g]) => [input, get(g)]));
    },
  });
}
