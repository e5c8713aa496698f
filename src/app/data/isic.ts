// ISIC-2016 (part 1, lesion segmentation) from a CSV with a header, as
// Medical-SAM-Adapter ships it: `,img,seg` rows `0,<image path>,<mask path>`
// (paths relative to the CSV's folder). Column choice: a header named
// img/image/image_path and seg/mask/mask_path/label/segmentation/gt when
// present; otherwise the last two columns. Every path must stay inside the
// CSV's folder and exist; errors name the CSV line and the file.
// Target: one channel, the binarised mask (grey > 127.5) at image size,
// resized to out size (soft only at edges) — the REFUGE pipeline with 1 rater.
import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep, basename, extname } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { CachedDataset, toBytes, type LoaderOptions, type RawSample } from './dataset.js';
import { readFileChecked, readImage } from './image-io.js';
import { parseCsv } from './csv.js';
import { binarisedMask } from './mask-target.js';
import { resizeBilinear } from './resize.js';

export interface IsicEntry {
  name: string;
  image: string;
  mask: string;
}

const imageHeaders = ['img', 'image', 'images', 'image_path', 'imagepath', 'image_file', 'input'];
const maskHeaders = ['seg', 'mask', 'masks', 'mask_path', 'maskpath', 'label', 'segmentation', 'gt', 'ground_truth', 'groundtruth'];

/** Largest CSV read (the real ones are a few tens of kB). */
const maxCsvBytes = 64 * 1024 * 1024;

async function insideRoot(root: string, rel: string, where: string): Promise<string> {
  if (rel.trim() === '') throw new PeftError(`${where}: empty path`);
  if (isAbsolute(rel)) throw new PeftError(`${where}: absolute path '${rel}' (paths must be relative to the CSV's folder)`);
  const abs = resolve(root, rel);
  const within = (p: string, r: string) => {
    const d = relative(r, p);
    return d !== '' && d !== '..' && !d.startsWith(`..${sep}`) && !isAbsolute(d);
  };
  if (!within(abs, root)) throw new PeftError(`${where}: path '${rel}' points outside the CSV's folder ${root}`);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new PeftError(`${abs}: no such file (${where})`);
  }
  if (!st.isFile()) throw new PeftError(`${abs}: not a regular file (${where})`);
  // symlinks must not escape either
  const [realAbs, realRoot] = await Promise.all([realpath(abs), realpath(root)]);
  if (!within(realAbs, realRoot)) throw new PeftError(`${where}: path '${rel}' resolves outside the CSV's folder ${root}`);
  return abs;
}

/** Reads and checks the CSV (existence of every file, no decoding). */
export async function scanIsicCsv(csvPath: string): Promise<IsicEntry[]> {
  const file = resolve(csvPath);
  const bytes = await readFileChecked(file, maxCsvBytes);
  const rows = parseCsv(Buffer.from(bytes).toString('utf8'), file);
  if (rows.length < 2) throw new PeftError(`${file}: no data rows (expected a header and image,mask rows)`);
  const header = rows[0]!.fields.map((h) => h.trim().toLowerCase());
  let ic = header.findIndex((h) => imageHeaders.includes(h));
  let mc = header.findIndex((h) => maskHeaders.includes(h));
  if (ic < 0 || mc < 0 || ic === mc) {
    if (header.length < 2) throw new PeftError(`${file}:1: the header needs an image and a mask column, got '${rows[0]!.fields.join(',')}'`);
    ic = header.length - 2;
    mc = header.length - 1;
  }
  const root = dirname(file);
  const entries: IsicEntry[] = [];
  for (const row of rows.slice(1)) {
    const where = `${file}:${row.line}`;
    if (row.fields.length !== header.length) {
      throw new PeftError(`${where}: expected ${header.length} fields like the header, got ${row.fields.length}`);
    }
    const image = await insideRoot(root, row.fields[ic]!.trim(), where);
    const mask = await insideRoot(root, row.fields[mc]!.trim(), where);
    entries.push({ name: basename(image, extname(image)), image, mask });
  }
  return entries;
}

export class IsicDataset extends CachedDataset {
  readonly channels = ['lesion'];

  constructor(
    readonly csvPath: string,
    readonly entries: IsicEntry[],
    opts: LoaderOptions = {},
  ) {
    super(csvPath, opts);
  }

  get length(): number {
    return this.entries.length;
  }

  protected sources(i: number): string[] {
    const e = this.entries[i]!;
    return [e.image, e.mask];
  }

  protected sampleName(i: number): string {
    return this.entries[i]!.name;
  }

  protected async load(i: number): Promise<RawSample> {
    const e = this.entries[i]!;
    const img = await readImage(e.image, 'rgb', this.imageOptions);
    const image = toBytes(resizeBilinear(img.data, img.width, img.height, 3, this.imageSize, this.imageSize));
    const target = binarisedMask(await readImage(e.mask, 'grey'), this.imageSize, this.outSize);
    return { name: e.name, image, target };
  }
}

/** Opens an ISIC-style CSV dataset. */
export async function openIsic(csvPath: string, opts: LoaderOptions = {}): Promise<IsicDataset> {
  const file = resolve(csvPath);
  return new IsicDataset(file, await scanIsicCsv(file), opts);
}
