// Reverse-mode differentiation on TensorFlow.js's tape that frees memory as
// it goes, as PyTorch's autograd does. `tf.engine().gradients` keeps every
// tensor saved for the backward pass, and the gradient of every intermediate
// tensor, until the whole backward pass ends: the peak is about twice the
// forward's saved activations. Here:
//
// - during the forward pass (`pruneTape`, called by the core layers' ops),
//   the tensors saved by operations that do not depend on any of the tensors
//   differentiated for (a frozen stem before the first adapted layer) are
//   freed at once, and so is the operand a product saved only for the
//   gradient of an operand that does not need one;
// - during the backward pass, a node's saved tensors and its outputs'
//   gradients are freed as soon as the node is processed.
//
// Same nodes, same gradient functions, same order of accumulation as the
// engine's: the results are identical. Nested (higher-order) use falls back to
// the engine.
import * as tf from '@tensorflow/tfjs';

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number; scopeStack?: { name: string }[] };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

function engine(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

/** Products whose saved `[a, b]` serve crosswise: a's gradient needs b, b's needs a. */
const CROSS_SAVED = new Set(['BatchMatMul', 'PeftMatMul', 'Multiply']);

interface Recording {
  tape: TapeNode[];
  /** Ids of tensors that depend on a differentiated tensor. */
  fromX: Set<number>;
  processed: number;
}

let recording: Recording | undefined;

function disposeSaved(node: TapeNode): void {
  for (const t of node.saved ?? []) t.dispose();
}

/**
 * Frees what the recorded tape can no longer need: the saved tensors of nodes
 * that do not depend on a differentiated tensor. A no-op outside
 * `valueAndGradsLowMemory`. Cheap: each node is looked at once.
 */
export function pruneTape(): void {
  const r = recording;
  if (!r) return;
  const e = engine();
  // not while another gradient computation records (depth > 1) or runs its backward pass: it may need what we would free
  if (e.state.activeTape !== r.tape || e.state.gradientDepth !== 1 || e.state.scopeStack?.some((s) => s.name === 'backward')) return;
  const tape = r.tape;
  for (; r.processed < tape.length; r.processed++) {
    const node = tape[r.processed]!;
    let any = false;
    for (const name in node.inputs) {
      if (r.fromX.has(node.inputs[name]!.id)) {
        any = true;
        break;
      }
    }
    if (!any) {
      disposeSaved(node);
      continue;
    }
    for (const o of node.outputs) r.fromX.add(o.id);
    const { a, b } = node.inputs;
    if (CROSS_SAVED.has(node.kernelName) && a && b && node.saved?.length === 2) {
      // only the gradients of connected operands will run
      if (!r.fromX.has(a.id)) node.saved[1]!.dispose();
      else if (!r.fromX.has(b.id)) node.saved[0]!.dispose();
    }
  }
}

/** The tape nodes on a path from `xs` to `y`, inputs pruned to those from `xs` (as the engine's filter). */
function filterTape(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    for (const name in node.inputs) {
      if (fromX.has(node.inputs[name]!.id)) {
        for (const o of node.outputs) fromX.add(o.id);
        nodesFromX.add(node.id);
        break;
      }
    }
  }
  const leadToY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => leadToY.has(o.id))) {
      for (const name in node.inputs) leadToY.add(node.inputs[name]!.id);
      nodesToY.add(node.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const name in node.inputs) if (fromX.has(node.inputs[name]!.id)) inputs[name] = node.inputs[name]!;
    out.push({ ...node, inputs });
  }
  return out;
}

/**
 * `f()` and its gradients with respect to `xs` (a tensor `f` does not depend
 * on gets `undefined`), like `tf.engine().gradients(f, xs)` but with the
 * memory behaviour described above. The caller disposes value and grads.
 */
export function valueAndGradsLowMemory(f: () => tf.Scalar, xs: tf.Tensor[]): { value: tf.Scalar; grads: (tf.Tensor | undefined)[] } {
  const e = engine();
  if (e.state.gradientDepth > 0 || recording || typeof e.scopedRun !== 'function') {
    const r = tf.engine().gradients(f, xs, undefined, true);
    return { value: r.value as tf.Scalar, grads: r.grads.map((g) => g ?? undefined) };
  }
  const rec: Recording = { tape: [], fromX: new Set(xs.map((x) => x.id)), processed: 0 };
  let y: tf.Tensor;
  try {
    y = e.scopedRun(
      () => {
        e.startTape();
        rec.tape = e.state.activeTape!;
        recording = rec;
      },
      () => e.endTape(),
      () => e.tidy('forward', f),
    );
    pruneTape();
  } finally {
    recording = undefined;
  }
  if (!(y instanceof tf.Tensor)) throw new Error('valueAndGradsLowMemory: f() must return a tensor');
  const tape = e.state.activeTape ?? rec.tape;
  const filtered = filterTape(tape, xs, y);
  const onPath = new Set(filtered.map((n) => n.id));
  for (const node of tape) if (!onPath.has(node.id)) disposeSaved(node);

  return e.tidy('backward', () => {
    // tensor ids grow monotonically: the first id made from here on
    const probe = tf.scalar(0);
    const firstOwned = probe.id;
    probe.dispose();
    const grads = new Map<number, tf.Tensor>();
    const refs = new Map<tf.Tensor, number>();
    const xIds = new Set(xs.map((x) => x.id));
    const hold = (id: number, t: tf.Tensor) => {
      grads.set(id, t);
      refs.set(t, (refs.get(t) ?? 0) + 1);
    };
    // only tensors made during this backward pass are ours to free
    const release = (t: tf.Tensor) => {
      const n = (refs.get(t) ?? 1) - 1;
      if (n > 0) refs.set(t, n);
      else {
        refs.delete(t);
        if (t.id >= firstOwned) t.dispose();
      }
    };
    hold(y.id, tf.ones(y.shape));
    for (let i = filtered.length - 1; i >= 0; i--) {
      const node = filtered[i]!;
      if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
      const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
      const inputGrads = node.gradient(dys);
      for (const name in node.inputs) {
        if (!(name in inputGrads)) {
          throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGrads)}.`);
        }
        const dx = e.tidy(node.kernelName, () => inputGrads[name]!());
        const x = node.inputs[name]!;
        if (dx.dtype !== 'float32') {
          throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
        }
        if (!tf.util.arraysEqual(dx.shape, x.shape)) {
          throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
        }
        const cur = grads.get(x.id);
        if (!cur) hold(x.id, dx);
        else {
          const sum = tf.add(cur, dx);
          grads.delete(x.id);
          release(cur);
          if (!refs.has(dx) && dx.id >= firstOwned) dx.dispose();
          hold(x.id, sum);
        }
      }
      for (const o of node.outputs) {
        if (xIds.has(o.id)) continue;
        const g = grads.get(o.id);
        if (g) {
          grads.delete(o.id);
          release(g);
        }
      }
      disposeSaved(node);
    }
    const result = xs.map((x) => grads.get(x.id));
    if (e.state.gradientDepth === 0) {
      for (const node of tape) disposeSaved(node);
      e.state.activeTape = null;
    }
    return { value: y as tf.Scalar, grads: result as tf.Tensor[] };
  }) as { value: tf.Scalar; grads: (tf.Tensor | undefined)[] };
}
