// Parity kind `torch.checkpoint`: `NAME.pt` (a torch.save zip) must hold
// exactly the tensors of its safetensors twin (`config.twin`), plus the integer
// entries `config.non_float_entries` lists (dtype and shape). The twin has no
// `output/` keys, so every check is a scalar: per tensor the largest absolute
// difference (expected 0; a missing key gives null, a shape or dtype mismatch
// Infinity), per integer entry 0 when dtype and shape match, and one check
// that the .pt holds no key beyond these.
import { join } from 'node:path';
import {
  PeftError,
  readSafetensors,
  readTorchCheckpoint,
  toFloat32,
  torchDtypeName,
  type ParityKind,
  type ParityOutput,
  type RawTensor,
  type ScalarCheck,
} from '../../src/index.js';

function maxAbsDifference(a: RawTensor, b: RawTensor): number {
  if (a.shape.join(',') !== b.shape.join(',')) return Infinity;
  if (a.dtype !== b.dtype) return Infinity;
  if (Buffer.from(a.bytes.buffer, a.bytes.byteOffset, a.bytes.byteLength).equals(b.bytes)) return 0;
  const x = toFloat32(a);
  const y = toFloat32(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    if (xi === yi || (Number.isNaN(xi) && Number.isNaN(yi))) continue;
    const d = Math.abs(xi - yi);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

export const torchCheckpointKind: ParityKind = {
  kind: 'torch.checkpoint',
  summary: 'torch.save (zip) state dict read without PyTorch, compared with its safetensors twin',
  run(fixture): ParityOutput {
    const c = fixture.config;
    if (typeof c.twin !== 'string') throw new PeftError(`${fixture.name}: config.twin (the safetensors twin) is missing`);
    const pt = readTorchCheckpoint(join(fixture.dir, `${fixture.name}.pt`));
    const twin = readSafetensors(join(fixture.dir, c.twin)).tensors;
    const ints = (c.non_float_entries ?? {}) as Record<string, [string, number[]]>;
    const scalars: ScalarCheck[] = [];
    for (const [key, expected] of twin) {
      const got = pt.get(key);
      scalars.push({ name: key, actual: got ? maxAbsDifference(got, expected) : null, expected: 0 });
    }
    for (const [key, [dtype, shape]] of Object.entries(ints)) {
      const got = pt.get(key);
      const ok = got !== undefined && torchDtypeName(got.dtype) === dtype && got.shape.join(',') === shape.join(',');
      scalars.push({ name: `${key} (${dtype} [${shape}])`, actual: got ? (ok ? 0 : 1) : null, expected: 0 });
    }
    const extra = [...pt.keys()].filter((k) => !twin.has(k) && !(k in ints));
    scalars.push({ name: `no keys beyond the twin and the integer entries${extra.length ? ` (extra: ${extra.slice(0, 3).join(', ')})` : ''}`, actual: extra.length, expected: 0 });
    return { tensors: new Map(), scalars };
  },
};
