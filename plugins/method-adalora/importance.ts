// AdaLoRA's importance averages: per A, E and B of every SVD layer, the
// smoothed sensitivity `exp_avg_ipt` (ema of |p g|) and its uncertainty
// `exp_avg_unc`, updated once per step through core `sensitivityEma` (one
// native kernel per parameter where the kernels are on, else the composite
// form), and the element scores ema * unc the allocator ranks triplets by.
// This is the method's training state: it lives outside the model, so the
// injector hands it to training checkpoints (`trainingState`) as `ipt/<key>`
// and `unc/<key>`, and a resumed run continues bit for bit.
import { PeftError, sensitivityEma, tf, type Parameter } from '../../src/index.js';

interface Averages {
  ipt: tf.Tensor;
  unc: tf.Tensor;
}

export class ImportanceAverages {
  private readonly byKey = new Map<string, Averages>();

  constructor(
    readonly beta1: number,
    readonly beta2: number,
  ) {}

  /**
   * One update of `key`'s averages from its parameter and gradient. A key
   * seen for the first time, or whose parameter changed shape (a pruned
   * layer reloaded), starts from zeros.
   */
  update(key: string, p: Parameter, g: tf.Tensor): void {
    if (g.shape.join(',') !== p.shape.join(',')) {
      throw new PeftError(`adalora: gradient of '${key}' has shape [${g.shape}], the parameter [${p.shape}]`);
    }
    const prev = this.byKey.get(key);
    const fresh = !prev || prev.ipt.shape.join(',') !== p.shape.join(',');
    const { ema, unc } = sensitivityEma(p.variable, g, fresh ? undefined : prev.ipt, fresh ? undefined : prev.unc, this.beta1, this.beta2);
    if (prev) tf.dispose([prev.ipt, prev.unc]);
    this.byKey.set(key, { ipt: ema, unc });
  }

  /** Element scores `ipt * unc` of `key` (a new tensor; zeros before its first update, or when `p`'s shape changed). */
  score(key: string, p: Parameter): tf.Tensor {
    const a = this.byKey.get(key);
    if (!a || a.ipt.shape.join(',') !== p.shape.join(',')) return tf.zeros(p.shape);
    return tf.mul(a.ipt, a.unc);
  }

  /** The averages as `ipt/<key>` and `unc/<key>` (live tensors: the caller does not dispose them). */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [key, a] of this.byKey) {
      out.set(`ipt/${key}`, a.ipt);
      out.set(`unc/${key}`, a.unc);
    }
    return out;
  }

  /** Replaces the averages by what `state()` returned (copies; other names are ignored). */
  loadState(state: Map<string, tf.Tensor>): void {
    const loaded = new Map<string, Averages>();
    for (const [name, t] of state) {
      if (!name.startsWith('ipt/')) continue;
      const key = name.slice('ipt/'.length);
      const unc = state.get(`unc/${key}`);
      if (!unc) throw new PeftError(`adalora: training state has ipt/${key} but no unc/${key}`);
      if (unc.shape.join(',') !== t.shape.join(',')) throw new PeftError(`adalora: training state ipt/${key} is [${t.shape}] but unc/${key} is [${unc.shape}]`);
      loaded.set(key, { ipt: t, unc });
    }
    for (const name of state.keys()) {
      if (name.startsWith('unc/') && !loaded.has(name.slice('unc/'.length))) throw new PeftError(`adalora: training state has ${name} but no ipt/${name.slice(4)}`);
    }
    // copy before freeing ours: `state` may be our own state()
    const copies = [...loaded].map(([key, a]): [string, Averages] => [key, { ipt: a.ipt.clone(), unc: a.unc.clone() }]);
    this.dispose();
    for (const [key, a] of copies) this.byKey.set(key, a);
  }

  get size(): number {
    return this.byKey.size;
  }

  dispose(): void {
    for (const a of this.byKey.values()) tf.dispose([a.ipt, a.unc]);
    this.byKey.clear();
  }
}
