// The two MLPs of SAM's mask decoder: `MLP` (the hypernetwork and IoU heads,
// `layers.i`, ReLU between layers) and `MLPBlock` (the two-way transformer's
// feed-forward, `lin1` → ReLU → `lin2`). Linears are looked up at forward time.
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module.js';
import { Linear, type LinearLike } from '../nn/layers.js';
import { ModuleList } from '../nn/containers.js';

/** `num_layers` linears `input → hidden → … → output`, ReLU after all but the last. */
export class MLP extends Module {
  constructor(
    readonly inputDim: number,
    readonly hiddenDim: number,
    readonly outputDim: number,
    readonly numLayers: number,
    readonly sigmoidOutput = false,
  ) {
    super();
    if (!(numLayers >= 1)) throw new Error(`MLP: num_layers must be >= 1, got ${numLayers}`);
    const dims = [inputDim, ...Array<number>(numLayers - 1).fill(hiddenDim), outputDim];
    const layers = new ModuleList<LinearLike>();
    for (let i = 0; i < numLayers; i++) layers.push(new Linear(dims[i]!, dims[i + 1]!));
    this.registerModule('layers', layers);
  }

  get layers(): ModuleList<LinearLike> {
    return this.child('layers') as ModuleList<LinearLike>;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = x;
      for (let i = 0; i < this.numLayers; i++) {
        y = this.layers.at(i).forward(y);
        if (i < this.numLayers - 1) y = tf.relu(y);
      }
      return this.sigmoidOutput ? tf.sigmoid(y) : y;
    });
  }
}

/** `lin2(relu(lin1(x)))`. */
export class MLPBlock extends Module {
  constructor(
    readonly embeddingDim: number,
    readonly mlpDim: number,
  ) {
    super();
    this.registerModule('lin1', new Linear(embeddingDim, mlpDim));
    this.registerModule('lin2', new Linear(mlpDim, embeddingDim));
  }

  get lin1(): LinearLike {
    return this.child('lin1') as LinearLike;
  }

  get lin2(): LinearLike {
    return this.child('lin2') as LinearLike;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.lin2.forward(tf.relu(this.lin1.forward(x))));
  }
}
