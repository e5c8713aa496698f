// The REFUGE (multi-rater) layout, as Medical-SAM-Adapter reads it:
//   <root>/<Training-400|Validation-400|Test-400>/<name>/<name>.jpg
//   (or .jpeg, .png, .bmp, .tif, .tiff, .dcm, .dicom: DICOM and TIFF are read as
//   `image-io.ts` says, with the dataset's `image` options)
//   <root>/<split>/<name>/<name>_seg_cup_{1..7}.png, <name>_seg_disc_{1..7}.png
// Target channels (cup, disc): the mean over the 7 raters of each rater's
// binarised mask (see `mask-target.ts`). Samples are sorted by name. A sample
// folder missing its image or any rater mask is an error naming the file.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { CachedDataset, toBytes, type LoaderOptions, type RawSample } from './dataset.js';
import { imageFileExtensions, readImage } from './image-io.js';
import { interleave, raterMean } from './mask-target.js';
import { resizeBilinear } from './resize.js';

export const refugeSplits = { train: 'Training-400', val: 'Validation-400', test: 'Test-400' } as const;
export type RefugeSplit = keyof typeof refugeSplits;
export const refugeRaters = 7;
export const refugeChannels = ['cup', 'disc'];

export interface RefugeOptions extends LoaderOptions {
  /** train (Training-400), val (Validation-400) or test (Test-400), or a folder name. Default train. */
  split?: RefugeSplit | string;
}

export interface RefugeEntry {
  name: string;
  image: string;
  cup: string[];
  disc: string[];
}

/** The expected mask files of one sample folder. */
export function refugeMaskPaths(dir: string, name: string): { cup: string[]; disc: string[] } {
  const raters = Array.from({ length: refugeRaters }, (_, k) => k + 1);
  return {
    cup: raters.map((k) => join(dir, `${name}_seg_cup_${k}.png`)),
    disc: raters.map((k) => join(dir, `${name}_seg_disc_${k}.png`)),
  };
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function listDirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
}

/** Resolves a split name to its folder under root, with a clear error listing what exists. */
export async function refugeSplitDir(root: string, split: string = 'train'): Promise<string> {
  const abs = resolve(root);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new PeftError(`${abs}: no such data folder`);
  }
  if (!st.isDirectory()) throw new PeftError(`${abs}: not a folder (expected the REFUGE layout: Training-400/, Test-400/)`);
  const folder = (refugeSplits as Record<string, string>)[split.toLowerCase()] ?? split;
  const dir = join(abs, folder);
  try {
    if ((await stat(dir)).isDirectory()) return dir;
  } catch {
    // fall through
  }
  const present = (await listDirs(abs)).filter((d) => /-400$/.test(d));
  throw new PeftError(`${dir}: no such split folder (${present.length ? `found ${present.join(', ')}` : 'expected the REFUGE layout: Training-400/, Test-400/'})`);
}

/** Lists and checks every sample of a split folder (existence only; decoding is lazy). */
export async function scanRefuge(splitDir: string): Promise<RefugeEntry[]> {
  const names = await listDirs(splitDir);
  if (names.length === 0) throw new PeftError(`${splitDir}: no sample folders (expected <name>/<name>.jpg with rater masks)`);
  const entries: RefugeEntry[] = [];
  for (const name of names) {
    const dir = join(splitDir, name);
    let image: string | undefined;
    for (const ext of imageFileExtensions) {
      if (await isFile(join(dir, name + ext))) {
        image = join(dir, name + ext);
        break;
      }
    }
    if (!image) throw new PeftError(`${join(dir, `${name}.jpg`)}: missing image`);
    const { cup, disc } = refugeMaskPaths(dir, name);
    for (const f of [...cup, ...disc]) {
      if (!(await isFile(f))) throw new PeftError(`${f}: missing rater mask`);
    }
    entries.push({ name, image, cup, disc });
  }
  return entries;
}

export class RefugeDataset extends CachedDataset {
  readonly channels = refugeChannels;

  constructor(
    readonly splitDir: string,
    readonly entries: RefugeEntry[],
    opts: LoaderOptions = {},
  ) {
    super(splitDir, opts);
  }

  get length(): number {
    return this.entries.length;
  }

  protected sources(i: number): string[] {
    const e = this.entries[i]!;
    return [e.image, ...e.cup, ...e.disc];
  }

  protected sampleName(i: number): string {
    return this.entries[i]!.name;
  }

  protected async load(i: number): Promise<RawSample> {
    const e = this.entries[i]!;
    const img = await readImage(e.image, 'rgb', this.imageOptions);
    const image = toBytes(resizeBilinear(img.data, img.width, img.height, 3, this.imageSize, this.imageSize));
    const cup = raterMean(await Promise.all(e.cup.map((f) => readImage(f, 'grey'))), this.imageSize, this.outSize);
    const disc = raterMean(await Promise.all(e.disc.map((f) => readImage(f, 'grey'))), this.imageSize, this.outSize);
    return { name: e.name, image, target: interleave([cup, disc]) };
  }
}

/** Opens one split of a REFUGE-layout folder. */
export async function openRefuge(root: string, opts: RefugeOptions = {}): Promise<RefugeDataset> {
  const dir = await refugeSplitDir(root, opts.split ?? 'train');
  return new RefugeDataset(dir, await scanRefuge(dir), opts);
}
