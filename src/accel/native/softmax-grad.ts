// Softmax's gradient on the fused kernel. tf.softmax records the kernel
// 'Softmax' on the tape, and its gradient (tfjs's softmaxGradConfig) is four
// kernels: dy*y, a sum, a product and a difference. The config below replaces
// it for every caller of tf.softmax (core attention, the plugins' attention
// blocks): where PeftSoftmaxGrad is registered for the active backend it runs
// that one kernel, elsewhere (native kernels off, another backend, another
// dtype) tfjs's own gradient function, so that nothing changes there.
import * as tf from '@tensorflow/tfjs';
import { PEFT_SOFTMAX_GRAD, fusedKernelActive } from './fused-names.js';

type GradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Record<string, () => tf.Tensor>;

let installed = false;

export function installSoftmaxGradient(): void {
  if (installed) return;
  const original = tf.getGradient('Softmax') as (tf.GradConfig & { gradFunc: GradFunc }) | undefined;
  if (!original) return; // tfjs registers it with its ops: absent only in a stripped build
  const gradFunc: GradFunc = (dy, saved, attrs) => {
    const [y] = saved as [tf.Tensor];
    const g = dy as tf.Tensor;
    const dim = Number((attrs as { dim?: number }).dim ?? -1);
    const last = dim === -1 || dim === y.rank - 1;
    if (last && y.dtype === 'float32' && g.dtype === 'float32' && fusedKernelActive(PEFT_SOFTMAX_GRAD)) {
      return { logits: () => tf.engine().runKernel(PEFT_SOFTMAX_GRAD, { y, dy: g }) as tf.Tensor };
    }
    return original.gradFunc(dy, saved, attrs);
  };
  tf.registerGradient({ ...original, gradFunc: gradFunc as unknown as tf.GradConfig['gradFunc'] });
  installed = true;
}
