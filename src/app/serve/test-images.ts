// The images a served run was scored on (its validation split: REFUGE's
// Validation-400 or Test-400, ISIC's validation CSV), listed by name and read
// at their own size with their ground truth, so the page can show a run's
// mask beside what the raters drew. The ground truth of a REFUGE structure is
// the raters' majority: each rater's mask binarised as training binarises it
// (grey > 127.5), at the image's size, kept where at least half agree.
import { basename } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { readImage, type Image8 } from '../data/image-io.js';
import { IsicDataset } from '../data/isic.js';
import { RefugeDataset } from '../data/refuge.js';
import { resizeBilinear } from '../data/resize.js';

/** One structure's ground truth: 1 inside, 0 outside, `width * height`. */
export interface TruthMask {
  name: string;
  mask: Uint8Array;
}

export interface TestImage {
  name: string;
  /** The image file: its identity, shared by runs trained on the same data. */
  path: string;
  image: Image8;
  truth: TruthMask[];
}

/** The test images of one dataset. */
export interface TestImageSource {
  /** What the split is called (`Test-400`, the CSV's name). */
  readonly split: string;
  readonly names: readonly string[];
  /** The image file of entry i (an identity for caches). */
  path(i: number): string;
  load(i: number): Promise<TestImage>;
}

/** A rater's grey mask → 0/1 at `width x height` (grey > 127.5 after resizing, as training binarises). */
function binarised(mask: Image8, width: number, height: number): Uint8Array {
  const src = mask.width === width && mask.height === height ? mask.data : resizeBilinear(mask.data, mask.width, mask.height, 1, width, height);
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = src[i]! > 127.5 ? 1 : 0;
  return out;
}

/** Pixels where at least half of the raters drew the structure. */
async function majority(files: string[], width: number, height: number): Promise<Uint8Array> {
  const votes = new Uint16Array(width * height);
  for (const f of files) {
    const b = binarised(await readImage(f, 'grey'), width, height);
    for (let i = 0; i < votes.length; i++) votes[i]! += b[i]!;
  }
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = votes[i]! * 2 >= files.length ? 1 : 0;
  return out;
}

/** The test images of a dataset opened by `openDatasets`, or undefined for a kind that does not say where its files are. */
export function testImageSource(ds: Dataset): TestImageSource | undefined {
  if (ds instanceof RefugeDataset) {
    const entries = ds.entries;
    return {
      split: basename(ds.splitDir),
      names: entries.map((e) => e.name),
      path: (i) => entries[i]!.image,
      async load(i) {
        const e = entries[i]!;
        const image = await readImage(e.image, 'rgb');
        const truth: TruthMask[] = [];
        const raters: Record<string, string[]> = { cup: e.cup, disc: e.disc };
        for (const name of ds.channels) truth.push({ name, mask: await majority(raters[name]!, image.width, image.height) });
        return { name: e.name, path: e.image, image, truth };
      },
    };
  }
  if (ds instanceof IsicDataset) {
    const entries = ds.entries;
    return {
      split: basename(ds.csvPath),
      names: entries.map((e) => e.name),
      path: (i) => entries[i]!.image,
      async load(i) {
        const e = entries[i]!;
        const image = await readImage(e.image, 'rgb');
        return { name: e.name, path: e.image, image, truth: [{ name: ds.channels[0]!, mask: await majority([e.mask], image.width, image.height) }] };
      },
    };
  }
  return undefined;
}
