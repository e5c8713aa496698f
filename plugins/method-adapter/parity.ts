// Parity kind `msa.Adapter` (fixtures README): D_fc2(GELU(D_fc1(x))), plus
// x when skip_connect; hidden width int(features * mlp_ratio).
import { PeftError, dotLoss, gradsByName, tf, type Fixture, type ParityKind } from '../../src/index.js';
import { Adapter } from './layer.js';

function configValue(fixture: Fixture, key: string, check: (v: unknown) => boolean, what: string, fallback?: unknown): any {
  const v = fixture.config[key] ?? fallback;
  if (!check(v)) throw new PeftError(`${fixture.name}: config '${key}' must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

export const msaAdapterParity: ParityKind = {
  kind: 'msa.Adapter',
  summary: "Medical-SAM-Adapter's Adapter: D_fc2(GELU(D_fc1(x))) (+ x with skip_connect), grads",
  run(fixture) {
    const features: number = configValue(fixture, 'features', (v) => Number.isInteger(v) && (v as number) > 0, 'a positive integer');
    const ratio: number = configValue(fixture, 'mlp_ratio', (v) => typeof v === 'number' && v > 0, 'a positive number', 0.25);
    const skip: boolean = configValue(fixture, 'skip_connect', (v) => typeof v === 'boolean', 'true or false', true);
    const hidden = Math.trunc(features * ratio);
    const adapter = new Adapter(features, hidden, skip);
    try {
      const params = fixture.group('param/');
      adapter.loadStateDict(params, { source: fixture.name });
      for (const t of params.values()) t.dispose();
      const x = fixture.tensor('input/x');
      const tensors = new Map<string, tf.Tensor>();
      if (!fixture.has('input/upstream')) {
        tensors.set('output/y', adapter.forward(x));
        return { tensors };
      }
      const upstream = fixture.tensor('input/upstream');
      let y: tf.Tensor | undefined;
      const { value, grads } = gradsByName(adapter, () => {
        y = tf.keep(adapter.forward(x));
        return dotLoss(y, upstream);
      });
      value.dispose();
      for (const [k, g] of grads) tensors.set(k, g);
      tensors.set('output/y', y!);
      return { tensors };
    } finally {
      adapter.dispose();
    }
  },
};
