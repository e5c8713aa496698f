// Counts the matrix-product and convolution FLOPs of the kernels a profiled
// run executed (tf.profile's kernel records: name, input and output shapes).
// A multiply-add is 2 FLOPs. Everything else (elementwise, reductions,
// transposes) is not counted.

export interface KernelRecord {
  name: string;
  inputShapes: (number[] | null)[];
  outputShapes: number[][];
  kernelTimeMs?: number | { error: string };
}

const size = (s: number[] | null | undefined): number => (s ? s.reduce((a, b) => a * b, 1) : 0);

/** FLOPs of one kernel execution (0 for kernels that are not products or convolutions). */
export function kernelFlops(k: KernelRecord): number {
  const [a, b] = k.inputShapes;
  const out = k.outputShapes[0];
  switch (k.name) {
    case 'BatchMatMul':
    case '_FusedMatMul':
    case 'PeftMatMul': {
      if (!a || !out) return 0;
      const m = out[out.length - 2]!;
      // a's last two axes are {m, k} in some order
      const inner = (a[a.length - 1]! * a[a.length - 2]!) / m;
      return 2 * size(out) * inner;
    }
    case 'PeftAttention': {
      // qkv [nb, N, 3C], probs [nb, heads, N, N]: q k^T and P v, 2 * N^2 * hd MACs per (batch, head),
      // plus the rel-pos terms (q . rh, q . rw) when the tables are given (inputs qkv, rh, rw[, bias]:
      // a lone second input is the logits bias [heads, N, N], no products)
      const probs = k.outputShapes[1];
      if (!a || !probs) return 0;
      const c = a[2]! / 3;
      const rel = b && k.inputShapes.length >= 3 ? 2 * size(a.slice(0, 2)) * c * (b[1]! + (k.inputShapes[2]?.[1] ?? 0)) : 0;
      return 4 * size(probs) * (c / probs[1]!) + rel;
    }
    case 'PeftAttentionGrad': {
      // inputs (dout, qkv, probs, rh?, rw?): dP, dv, dq, dk (4 products), rel-pos dq and, when they are
      // outputs (dqkv, drh?, drw?, dbias?), the table grads
      const qkv = b;
      const probs = k.inputShapes[2];
      if (!qkv || !probs) return 0;
      const c = qkv[2]! / 3;
      const rh = k.inputShapes[3];
      const tables = rh != null && k.outputShapes.length > 1 && k.outputShapes[1]!.join() === rh.join();
      const rel = rh ? (tables ? 4 : 2) * size(qkv.slice(0, 2)) * c * (rh[1]! + (k.inputShapes[4]?.[1] ?? 0)) : 0;
      return 8 * size(probs) * (c / probs[1]!) + rel;
    }
    case 'PeftLowRankLinear':
    case 'PeftLowRankLinearScaled': {
      // inputs x [N, in], a [r*k, in], b [gw*k, r], w [out, in] (bias?, e?): x W^T, t = x A^T, t_j B_j^T
      const [x, la, lb, w] = k.inputShapes;
      if (!x || !la || !lb || !w) return 0;
      return 2 * x[0]! * (x[1]! * w[0]! + la[0]! * x[1]! + lb[0]! * lb[1]!);
    }
    case 'PeftLowRankLinearGrad': {
      // inputs dy, x, w, a, b, t; outputs those of dx, da, db, dw, dbias asked, in that order
      const [, x, w, la, lb] = k.inputShapes;
      if (!x || !w || !la || !lb) return 0;
      const [n, inF] = [x[0]!, x[1]!];
      const same = (s: number[] | undefined, t: number[]) => s !== undefined && s.length === t.length && s.every((d, i) => d === t[i]);
      let i = 0;
      const has = (t: number[]) => (same(k.outputShapes[i], t) ? (i++, true) : false);
      const [dx, da, db, dw] = [has(x), has(la), has(lb), has(w)];
      let f = dx || da ? 2 * n * lb[0]! * lb[1]! : 0; // u = dy_g B_j
      if (dx) f += 2 * n * inF * (w[0]! + la[0]!);
      if (da) f += 2 * la[0]! * inF * n;
      if (db) f += 2 * lb[0]! * lb[1]! * n;
      if (dw) f += 2 * w[0]! * inF * n;
      return f;
    }
    case 'PeftOrthogonality':
    case 'PeftOrthogonalityGrad': {
      // per matrix [p, q] the Gram matrix on its smaller side r (the rank): 2 r p q FLOPs; the gradient also
      // D x (x D); inputs the matrices (after dn and norms in the gradient)
      const mats = (k.name === 'PeftOrthogonality' ? k.inputShapes : k.inputShapes.slice(2)).filter((m): m is number[] => m !== null && m.length === 2);
      const products = k.name === 'PeftOrthogonality' ? 1 : 2;
      return mats.reduce((f, m) => f + products * 2 * size(m) * Math.min(m[0]!, m[1]!), 0);
    }
    case 'PeftBottleneckMlp': {
      // inputs x [N, in], w1 [hid, in], b1, w2 [out, hid]: pre = x W1^T, gelu(pre) W2^T
      const [x, w1, , w2] = k.inputShapes;
      if (!x || !w1 || !w2) return 0;
      return 2 * x[0]! * (w1[0]! * w1[1]! + w2[0]! * w2[1]!);
    }
    case 'PeftBottleneckMlpGrad': {
      // inputs dy, x, w1, w2, pre; outputs those of dx, dw1, db1, dw2, db2 asked, in that order
      const [, x, w1, w2] = k.inputShapes;
      if (!x || !w1 || !w2) return 0;
      const n = x[0]!;
      const same = (s: number[] | undefined, t: number[]) => s !== undefined && s.length === t.length && s.every((d, i) => d === t[i]);
      let i = 0;
      const has = (t: number[]) => (same(k.outputShapes[i], t) ? (i++, true) : false);
      const [dx, dw1, db1, dw2] = [has(x), has(w1), has([w1[0]!]), has(w2)];
      const f1 = 2 * n * w1[0]! * w1[1]!; // one product of x's side: dx, dW1
      const f2 = 2 * n * w2[0]! * w2[1]!; // one of the output's side: dh = dy W2, dW2
      return (dx || dw1 || db1 ? f2 : 0) + (dx ? f1 : 0) + (dw1 ? f1 : 0) + (dw2 ? f2 : 0);
    }
    case 'Conv2D':
    case 'FusedConv2D': {
      // filter [kh, kw, ci, co]
      if (!b || !out) return 0;
      return 2 * size(out) * b[0]! * b[1]! * b[2]!;
    }
    case 'Conv2DBackpropInput': {
      // inputs (dy, filter): as many MACs as the forward
      if (!a || !b) return 0;
      return 2 * size(a) * b[0]! * b[1]! * b[2]!;
    }
    case 'Conv2DBackpropFilter': {
      // inputs (x, dy), output the filter [kh, kw, ci, co]
      if (!b || !out) return 0;
      return 2 * size(b) * out[0]! * out[1]! * out[2]!;
    }
    case 'DepthwiseConv2dNative':
    case 'FusedDepthwiseConv2D': {
      if (!b || !out) return 0;
      return 2 * size(out) * b[0]! * b[1]!;
    }
    case 'DepthwiseConv2dNativeBackpropInput': {
      // inputs (dy, filter)
      if (!a || !b) return 0;
      return 2 * size(a) * b[0]! * b[1]!;
    }
    case 'DepthwiseConv2dNativeBackpropFilter': {
      // inputs (x, dy), output the filter
      if (!b || !out) return 0;
      return 2 * size(b) * out[0]! * out[1]!;
    }
    default:
      return 0;
  }
}

export interface KernelSummary {
  /** Kernel name, or kernel name and input shapes (per-shape breakdown). */
  name: string;
  calls: number;
  ms: number;
  gflop: number;
}

/** Total FLOPs, and time and FLOPs per kernel name and per kernel name + input shapes (slowest first). */
export function summarise(kernels: KernelRecord[]): { flops: number; byKernel: KernelSummary[]; byShape: KernelSummary[] } {
  const by = new Map<string, KernelSummary>();
  const byShape = new Map<string, KernelSummary>();
  let flops = 0;
  const add = (map: Map<string, KernelSummary>, name: string, ms: number, f: number) => {
    const e = map.get(name) ?? { name, calls: 0, ms: 0, gflop: 0 };
    e.calls++;
    e.ms += ms;
    e.gflop += f / 1e9;
    map.set(name, e);
  };
  for (const k of kernels) {
    const f = kernelFlops(k);
    flops += f;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    add(by, k.name, ms, f);
    add(byShape, `${k.name} ${k.inputShapes.map((s) => `[${s?.join(',') ?? ''}]`).join(' ')}`, ms, f);
  }
  const slowest = (m: Map<string, KernelSummary>) => [...m.values()].sort((x, y) => y.ms - x.ms);
  return { flops, byKernel: slowest(by), byShape: slowest(byShape) };
}
