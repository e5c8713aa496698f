// Parity kind `msa.Adapter` (fixtures README): D_fc2(GELU(D_fc1(x))), plus
// x when skip_connect; hidden width int(features * mlp_ratio).
import { PeftError, runLayerFixture, type Fixture, type ParityKind } from '../../src/index.js';
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
    return runLayerFixture(new Adapter(features, hidden, skip), fixture);
  },
};
