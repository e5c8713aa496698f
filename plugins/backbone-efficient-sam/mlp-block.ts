// EfficientSAM's MLPBlock (mlp.py): `layers.i = Sequential(Linear, act)` for
// each of num_layers hidden layers, then the output linear `fc` (no activation).
import { GELU, Linear, Module, tf, type LinearLike, ModuleList, Sequential } from '../../src/index.js';

export class MlpBlock extends Module {
  constructor(inputDim: number, hiddenDim: number, outputDim: number, numLayers: number) {
    super();
    const layers: Sequential[] = [];
    for (let i = 0; i < numLayers; i++) layers.push(new Sequential([new Linear(i === 0 ? inputDim : hiddenDim, hiddenDim), new GELU()]));
    this.registerModule('layers', new ModuleList(layers));
    this.registerModule('fc', new Linear(hiddenDim, outputDim));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = x;
      for (const layer of this.child('layers') as ModuleList<Sequential>) y = layer.forward(y);
      return (this.child('fc') as LinearLike).forward(y);
    });
  }
}
