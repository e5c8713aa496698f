// Adam, as PyTorch's torch.optim.Adam (no weight decay, bias-corrected),
// with its state (step, first and second moments by parameter name) exposed
// so that checkpoints resume exactly. Where the native kernels are on, each
// parameter's update is one kernel (PeftAdam, bit-identical to the composite
// form below, which stays the fallback and the reference).
import * as tf from '@tensorflow/tfjs';
import { PEFT_ADAM, fusedKernelActive } from '../../accel/native/fused-names.js';
import type { Parameter } from '../../core/nn/parameter.js';

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export class Adam {
  /** The rate of the next step (a schedule sets it before each step). */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(options: AdamOptions) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
  }

  /** Applies one update to every named parameter with a gradient. Does not dispose the grads. */
  apply(params: [string, Parameter][], grads: Map<string, tf.Tensor>): void {
    this.step++;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    const native = fusedKernelActive(PEFT_ADAM);
    const attrs = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, step: this.step };
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.moment(this.m, name, p);
      const v = this.moment(this.v, name, p);
      if (native && fusable(p.variable, g, m, v)) {
        tf.tidy(() => {
          const [pNew, mNew, vNew] = tf.engine().runKernel(PEFT_ADAM, { p: p.variable, g, m, v }, attrs) as tf.Tensor[];
          m.assign(mNew!);
          v.assign(vNew!);
          p.assign(pNew!);
        });
        continue;
      }
      tf.tidy(() => {
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.eps);
        p.assign(tf.sub(p.variable, tf.mul(tf.div(m, denom), this.lr / bc1)));
      });
    }
  }

  private moment(store: Map<string, tf.Variable>, name: string, p: Parameter): tf.Variable {
    let t = store.get(name);
    if (!t) {
      t = tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false));
      store.set(name, t);
    }
    return t;
  }

  /** The optimiser state as tensors keyed `m/<name>`, `v/<name>` (live: do not dispose). */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [k, t] of this.m) out.set(`m/${k}`, t);
    for (const [k, t] of this.v) out.set(`v/${k}`, t);
    return out;
  }

  /** Restores state saved by `state()` and the step count. */
  load(step: number, state: Map<string, tf.Tensor>): void {
    this.dispose();
    this.step = step;
    for (const [key, t] of state) {
      const store = key.startsWith('m/') ? this.m : key.startsWith('v/') ? this.v : undefined;
      if (!store) continue;
      store.set(key.slice(2), tf.variable(t, false)); // shares t's data; t may be disposed after
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Whether PeftAdam takes these: float32, one shape (else the composite form, which also broadcasts). */
function fusable(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor): boolean {
  return [p, g, m, v].every((t) => t.dtype === 'float32' && t.shape.length === p.shape.length && t.shape.every((d, i) => d === p.shape[i]));
}
