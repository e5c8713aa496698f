// Adam, as PyTorch's torch.optim.Adam (no weight decay, bias-corrected),
// with its state (step, first and second moments by parameter name) exposed
// so that checkpoints resume exactly. Where the native kernels are on, the
// update of every parameter of a step is one kernel (PeftAdamMulti, as
// PyTorch's multi-tensor Adam: a step of the README's main job has 138
// trainable tensors), each bit-identical to the per-parameter kernel
// (PeftAdam) and to the composite form below, which stays the fallback and
// the reference.
import * as tf from '@tensorflow/tfjs';
import { PEFT_ADAM, PEFT_ADAM_MULTI, fusedKernelActive } from '../../accel/native/fused-names.js';
import { PeftError } from '../../core/errors.js';
import type { Parameter } from '../../core/nn/parameter.js';
import { quoteName } from '../../core/text.js';

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
    const multi = fusedKernelActive(PEFT_ADAM_MULTI);
    const native = multi || fusedKernelActive(PEFT_ADAM);
    const attrs = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, step: this.step };
    const batch: { p: Parameter; g: tf.Tensor; m: tf.Variable; v: tf.Variable }[] = [];
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.moment(this.m, name, p);
      const v = this.moment(this.v, name, p);
      if (multi && fusable(p.variable, g, m, v)) {
        batch.push({ p, g, m, v });
        continue;
      }
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
    if (batch.length === 0) return;
    tf.tidy(() => {
      const inputs: tf.NamedTensorMap = {};
      batch.forEach(({ p, g, m, v }, i) => {
        inputs[`p${i}`] = p.variable;
        inputs[`g${i}`] = g;
        inputs[`m${i}`] = m;
        inputs[`v${i}`] = v;
      });
      const out = tf.engine().runKernel(PEFT_ADAM_MULTI, inputs, { ...attrs, count: batch.length }) as tf.Tensor[];
      batch.forEach(({ p, m, v }, i) => {
        m.assign(out[3 * i + 1]!);
        v.assign(out[3 * i + 2]!);
        p.assign(out[3 * i]!);
      });
    });
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

  /** Restores state saved by `state()` and the step count (check it first with `checkAdamState`). */
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

/**
 * Checks saved Adam state (`m/<name>`, `v/<name>`, as `state()` writes it)
 * against the parameters it will update, before any of it is used: every
 * moment names a trainable parameter, has its shape, is float32 and finite
 * (second moments >= 0), comes with its pair, and there are moments only
 * after a step. A PeftError naming `file` and the moment otherwise.
 */
export function checkAdamState(state: ReadonlyMap<string, tf.Tensor>, params: [string, Parameter][], step: number, file: string): void {
  const byName = new Map(params);
  let moments = 0;
  for (const [key, t] of state) {
    const kind = key.startsWith('m/') ? 'first' : key.startsWith('v/') ? 'second' : undefined;
    if (!kind) continue;
    moments++;
    const name = key.slice(2);
    const what = `${file}: Adam's ${kind} moment ${quoteName(key)}`;
    const p = byName.get(name);
    if (!p) throw new PeftError(`${what} is for ${quoteName(name)}, which is not a trainable tensor of the model`);
    if (t.dtype !== 'float32') throw new PeftError(`${what} has dtype ${t.dtype}, expected float32`);
    if (t.shape.join(',') !== p.shape.join(',')) throw new PeftError(`${what} has shape [${t.shape}] but the parameter is [${p.shape}]`);
    const pair = `${key.startsWith('m/') ? 'v' : 'm'}/${name}`;
    if (!state.has(pair)) throw new PeftError(`${what} has no ${kind === 'first' ? 'second' : 'first'} moment ${quoteName(pair)}`);
    const ok = tf.tidy(() => {
      const finite = tf.all(tf.isFinite(t));
      return (kind === 'second' ? tf.logicalAnd(finite, tf.greaterEqual(tf.min(t), 0)) : finite).dataSync()[0] === 1;
    });
    if (!ok) throw new PeftError(`${what} holds ${kind === 'second' ? 'a negative or non-finite value' : 'a non-finite value'}`);
  }
  if (moments > 0 && step < 1) throw new PeftError(`${file}: holds Adam moments but its step count is ${step} (moments exist only after a step)`);
}

/** Whether PeftAdam takes these: float32, one shape (else the composite form, which also broadcasts). */
function fusable(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor): boolean {
  return [p, g, m, v].every((t) => t.dtype === 'float32' && t.shape.length === p.shape.length && t.shape.every((d, i) => d === p.shape[i]));
}
