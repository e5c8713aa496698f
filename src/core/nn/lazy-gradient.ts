// One op on the tape with named inputs, one output, and a gradient per input
// made only where the engine asks for it: the backward pass reaches the op and
// asks for the gradients of the inputs on the path to what is differentiated
// (the engine prunes the others), so a gradient is a function called on
// demand. The gradients likely asked for (predicted at the forward pass) are
// made together, by one call, when the backward pass reaches the op; any other
// when asked, by itself.
//
// Unlike a registered kernel gradient (gradient-path.ts), the op has one output
// (what it keeps for the backward pass is saved, not an output): the engine
// makes a zero-filled dy for every output not on the path, so a kernel's second
// output (attention's probs, [nb, heads, N, N]) would cost a zero tensor that
// large per backward pass. Unlike tf.customGrad, whose gradients are all made
// when the op is reached, a gradient not asked for costs nothing.
import * as tf from '@tensorflow/tfjs';

type Save = (tensors: tf.Tensor[]) => void;

/** The engine's entry for custom ops (what tf.customGrad calls), with lazy gradients. */
interface EngineCustomOp {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: Save) => tf.Tensor;
    backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: tf.NamedTensorMap;
  }): tf.Tensor;
}

/**
 * `forward(save)` as one op of the tape over `inputs`. At the backward pass,
 * `make(dy, saved, want)` returns the gradients named in `want` (`inputs`'
 * names): first those in `likely` (any not used is freed with the backward
 * pass's scope), then, one at a time, any other the engine asks for.
 */
export function opWithLazyGradient(
  inputs: tf.NamedTensorMap,
  forward: (save: Save) => tf.Tensor,
  likely: string[],
  make: (dy: tf.Tensor, saved: tf.Tensor[], want: Set<string>) => Map<string, tf.Tensor>,
): tf.Tensor {
  const engine = tf.engine() as unknown as EngineCustomOp;
  return engine.runKernelFunc({
    inputs,
    forwardFunc: (_backend, save) => forward(save),
    backwardsFunc: (dy, saved) => {
      const made = likely.length > 0 ? make(dy, saved, new Set(likely)) : new Map<string, tf.Tensor>();
      const get = (name: string) => () => made.get(name) ?? make(dy, saved, new Set([name])).get(name)!;
      return Object.fromEntries(Object.keys(inputs).map((name) => [name, get(name)]));
    },
  });
}
