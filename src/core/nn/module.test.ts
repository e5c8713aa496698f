import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, GELU, LayerNorm, Linear } from './layers.js';
import { Module } from './module.js';
import { PeftError } from '../errors.js';
import { valueAndGrads } from './grad.js';

class Block extends Module {
  constructor() {
    super();
    this.registerModule('norm', new LayerNorm(4));
    this.registerModule('fc', new Linear(4, 2));
    this.registerModule('bn', new BatchNorm2d(2));
  }
}
class Net extends Module {
  constructor() {
    super();
    this.registerParameter('pos_embed', tf.zeros([1, 4]));
    const blocks = this.registerModule('blocks', new (class extends Module {})());
    blocks.registerModule('0', new Block());
    blocks.registerModule('1', new Block());
  }
}

describe('Module', () => {
  it('names parameters and buffers as PyTorch does', () => {
    const net = new Net();
    expect(net.namedParameters().map(([k]) => k)).toEqual([
      'pos_embed',
      'blocks.0.norm.weight', 'blocks.0.norm.bias', 'blocks.0.fc.weight', 'blocks.0.fc.bias', 'blocks.0.bn.weight', 'blocks.0.bn.bias',
      'blocks.1.norm.weight', 'blocks.1.norm.bias', 'blocks.1.fc.weight', 'blocks.1.fc.bias', 'blocks.1.bn.weight', 'blocks.1.bn.bias',
    ]);
    expect(net.namedBuffers().map(([k]) => k)).toEqual([
      'blocks.0.bn.running_mean', 'blocks.0.bn.running_var', 'blocks.0.bn.num_batches_tracked',
      'blocks.1.bn.running_mean', 'blocks.1.bn.running_var', 'blocks.1.bn.num_batches_tracked',
    ]);
    expect(net.getModule('blocks.1.fc')).toBeInstanceOf(Linear);
    expect(() => net.getModule('blocks.2.fc')).toThrow("no module at 'blocks.2.fc' (no child '2')");
    net.dispose();
  });

  it('loads a state dict strictly, reporting missing, unexpected and mismatched keys without loading anything', () => {
    const net = new Net();
    const sd = new Map<string, tf.Tensor>();
    for (const [k, v] of net.stateDict()) sd.set(k, tf.onesLike(v));
    sd.delete('blocks.1.fc.bias');
    sd.set('blocks.0.extra', tf.zeros([1]));
    sd.set('blocks.0.fc.weight', tf.zeros([3, 4]));
    let err: unknown;
    try {
      net.loadStateDict(sd, { source: 'ckpt.pt' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PeftError);
    expect((err as Error).message).toBe(
      'ckpt.pt: state dict does not fit the model (shape mismatch: blocks.0.fc.weight expected [2,4] got [3,4]; missing: blocks.1.fc.bias; unexpected: blocks.0.extra)',
    );
    expect(net.param('pos_embed').variable.dataSync()[0]).toBe(0);
    const report = net.loadStateDict(sd, { strict: false });
    expect(report).toMatchObject({ missing: ['blocks.1.fc.bias'], unexpected: ['blocks.0.extra'], loaded: 17 });
    expect(net.param('pos_embed').variable.dataSync()[0]).toBe(1);
    // num_batches_tracked is optional: a float-only state dict (a safetensors twin) loads strictly
    const floats = new Map([...net.stateDict()].filter(([k]) => !k.endsWith('num_batches_tracked')));
    expect(net.loadStateDict(floats).missing).toEqual([]);
    tf.dispose([...sd.values()]);
    net.dispose();
  });

  it('freezes, unfreezes, and switches train/eval recursively', () => {
    const net = new Net();
    net.requiresGrad(false);
    expect(net.trainableParameters()).toEqual([]);
    (net.getModule('blocks.0.fc') as Linear).requiresGrad(true);
    expect(net.trainableParameters().map(([k]) => k)).toEqual(['blocks.0.fc.weight', 'blocks.0.fc.bias']);
    net.train();
    expect(net.getModule('blocks.1.bn').training).toBe(true);
    net.eval();
    expect(net.getModule('blocks.1.bn').training).toBe(false);
    expect(() => net.param('nope')).toThrow();
    net.dispose();
  });

  it('setModule replaces a child and the parent sees the replacement', () => {
    const net = new Net();
    const old = net.setModule('blocks.0.fc', new Linear(4, 2, false));
    expect(old).toBeInstanceOf(Linear);
    expect(net.namedParameters().map(([k]) => k)).not.toContain('blocks.0.fc.bias');
    old.dispose();
    net.dispose();
  });
});

async function close(a: tf.Tensor, b: tf.Tensor, tol = 1e-5) {
  expect(a.shape).toEqual(b.shape);
  const d = tf.max(tf.abs(tf.sub(a, b)));
  expect((await d.data())[0]).toBeLessThan(tol);
}

describe('layers', () => {
  it('Linear computes x W^T + b on any leading shape', async () => {
    const lin = new Linear(3, 2);
    lin.param('weight').assign(tf.tensor2d([[1, 2, 3], [4, 5, 6]]));
    lin.param('bias').assign(tf.tensor1d([0.5, -1]));
    const y = lin.forward(tf.tensor3d([[[1, 0, -1]], [[2, 1, 0]]]));
    expect(y.shape).toEqual([2, 1, 2]);
    expect(Array.from(await y.data())).toEqual([-1.5, -3, 4.5, 12]);
  });

  it('Conv2d fast paths equal the general convolution', async () => {
    // kernel == stride (patch embedding)
    const patch = new Conv2d(3, 5, 4, { stride: 4 });
    const x = tf.randomNormal([2, 9, 8, 3]);
    const w = patch.param('weight').variable;
    const ref = tf.add(tf.conv2d(x as tf.Tensor4D, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, 4, 'valid'), patch.param('bias').variable);
    await close(patch.forward(x as tf.Tensor4D), ref);
    // 1x1 kernel == stride (a pointwise conv, the patch path without its Transpose): values and gradients
    const point = new Conv2d(6, 5, 1);
    const xp = tf.randomNormal([2, 3, 4, 6]) as tf.Tensor4D;
    const wp = point.param('weight').variable;
    const bp = point.param('bias').variable;
    const up = tf.randomNormal([2, 3, 4, 5]);
    const viaConv = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.conv2d(xx as tf.Tensor4D, tf.transpose(ww, [2, 3, 1, 0]) as tf.Tensor4D, 1, 'valid'), bb), up));
    await close(point.forward(xp), tf.add(tf.conv2d(xp, tf.transpose(wp, [2, 3, 1, 0]) as tf.Tensor4D, 1, 'valid'), bp));
    const want = tf.grads((xx, ww, bb) => viaConv(xx!, ww!, bb!))([xp, wp, bp]);
    await close(tf.grad((xx) => tf.sum(tf.mul(point.forward(xx as tf.Tensor4D), up)))(xp), want[0]!);
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(point.forward(xp), up)) as tf.Scalar, [wp, bp]);
    await close(grads[wp.name]!, want[1]!);
    await close(grads[bp.name]!, want[2]!);
    // grouped convolution equals per-group convolution
    const grouped = new Conv2d(4, 6, 3, { padding: 1, groups: 2, bias: false });
    const xg = tf.randomNormal([1, 5, 5, 4]) as tf.Tensor4D;
    const wg = grouped.param('weight').variable;
    const halves = [0, 1].map((g) =>
      tf.conv2d(tf.slice(xg, [0, 0, 0, 2 * g], [-1, -1, -1, 2]), tf.transpose(tf.slice(wg, [3 * g, 0, 0, 0], [3, -1, -1, -1]), [2, 3, 1, 0]) as tf.Tensor4D, 1, 1),
    );
    await close(grouped.forward(xg), tf.concat(halves, 3));
    // depthwise with a channel multiplier: output channel c*m + j reads input channel c
    const dw = new Conv2d(2, 4, 3, { padding: 1, groups: 2, bias: false, stride: 2 });
    const xd = tf.randomNormal([1, 6, 6, 2]) as tf.Tensor4D;
    const wd = dw.param('weight').variable;
    const perOut = [0, 1, 2, 3].map((o) =>
      tf.conv2d(tf.slice(xd, [0, 0, 0, Math.floor(o / 2)], [-1, -1, -1, 1]), tf.transpose(tf.slice(wd, [o, 0, 0, 0], [1, -1, -1, -1]), [2, 3, 1, 0]) as tf.Tensor4D, 2, 1),
    );
    await close(dw.forward(xd), tf.concat(perOut, 3));
  });

  it('ConvTranspose2d kernel==stride path equals tf.conv2dTranspose', async () => {
    const up = new ConvTranspose2d(3, 2, 2, 2);
    const x = tf.randomNormal([2, 3, 4, 3]) as tf.Tensor4D;
    const w = up.param('weight').variable;
    const ref = tf.add(tf.conv2dTranspose(x, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, [2, 6, 8, 2], 2, 'valid'), up.param('bias').variable);
    await close(up.forward(x), ref);
  });

  it('LayerNorm, BatchNorm2d, GELU and Dropout match their formulas', async () => {
    const ln = new LayerNorm(4, 1e-6);
    const y = ln.forward(tf.tensor2d([[1, 2, 3, 4]]));
    const sd = Math.sqrt(1.25 + 1e-6);
    await close(y, tf.tensor2d([[-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]]));
    const bn = new BatchNorm2d(2, 1e-5);
    bn.param('running_mean').assign(tf.tensor1d([1, -1]));
    bn.param('running_var').assign(tf.tensor1d([4, 0.25]));
    bn.param('weight').assign(tf.tensor1d([2, 1]));
    bn.param('bias').assign(tf.tensor1d([0, 3]));
    await close(bn.forward(tf.tensor4d([[[[3, 0]]]])), tf.tensor4d([[[[2 * (2 / Math.sqrt(4 + 1e-5)), 3 + 1 / Math.sqrt(0.25 + 1e-5)]]]]));
    const g = new GELU().forward(tf.tensor1d([-1, 0, 1, 3]));
    await close(g, tf.tensor1d([-0.15865526, 0, 0.8413447, 2.9959502]), 2e-6);
    const gt = new GELU('tanh').forward(tf.tensor1d([1]));
    await close(gt, tf.tensor1d([0.8411920]), 2e-6);
    const drop = new Dropout(0.5);
    const ones = tf.ones([1000]);
    expect(drop.forward(ones)).toBe(ones);
    drop.train();
    const kept = (await tf.sum(tf.notEqual(drop.forward(ones), 0)).data())[0]!;
    expect(kept).toBeGreaterThan(400);
    expect(kept).toBeLessThan(600);
    expect(() => new Dropout(1)).toThrow();
  });

  it('valueAndGrads differentiates frozen variables too', async () => {
    const lin = new Linear(2, 1, false);
    lin.requiresGrad(false);
    lin.param('weight').assign(tf.tensor2d([[2, 3]]));
    const x = tf.tensor2d([[1, 4]]);
    const { value, grads } = valueAndGrads(() => tf.sum(lin.forward(x)), [lin.param('weight').variable]);
    expect((await value.data())[0]).toBe(14);
    expect(Array.from(await grads[0]!.data())).toEqual([1, 4]);
  });
});
