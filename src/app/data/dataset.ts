// The dataset contract used by training and evaluation, a base class that keeps
// decoded, resized samples in memory (optionally also on disk), applies seeded
// augmentation, and a batching helper that turns samples into tf tensors.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readFile, rename, stat, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PeftError, errorReason } from '../../core/errors.js';
import { augmentSample, augmentSchema, drawAugment, type AugmentInput, type AugmentOptions } from './augment.js';
import { readImageFileHeader, type ReadImageOptions } from './image-io.js';
import { SampleBudget } from './image-limits.js';
import { Rng } from './random.js';
import { makeDir } from '../../core/io/make-dir.js';

/** One example: image at `size`, soft target at `outSize`, both channels-last. */
export interface Sample {
  name: string;
  /** `size * size * 3`, channels-last RGB, 0..255 floats. */
  image: Float32Array;
  /** `outSize * outSize * channels`, soft mask in [0, 1] (mean of the raters' binarised masks). */
  target: Float32Array;
  size: number;
  outSize: number;
  channels: number;
}

export interface Dataset {
  readonly length: number;
  /** Names of the target channels (REFUGE: cup, disc; ISIC: lesion). */
  readonly channels: string[];
  readonly imageSize: number;
  readonly outSize: number;
  /** Sample i; with `rng`, augmented (when the dataset was opened with augmentation). */
  get(i: number, rng?: Rng): Promise<Sample>;
  /**
   * What is wrong with sample i's files, read from their headers only (no
   * pixel decoded): one message per bad file, each naming it; empty when the
   * sample can be decoded as far as its headers tell. `checkSamples` asks
   * every sample before a run starts.
   */
  sampleProblems?(i: number): Promise<string[]>;
}

/** Options shared by the loaders. */
export interface LoaderOptions {
  /** Side of the (square) model input. Default 256. */
  imageSize?: number;
  /** Side of the (square) target. Default: imageSize. */
  outSize?: number;
  /** Augmentation applied by `get(i, rng)`; false or absent: none. true: defaults. */
  augment?: boolean | AugmentInput;
  /** Keep decoded, resized samples in memory (default true). */
  memoryCache?: boolean;
  /** Also keep them on disk in this folder, keyed by source files, sizes and mtimes. */
  cacheDir?: string;
  /** How DICOM and TIFF images are read: grey-level window, frame (see `ReadImageOptions`). Masks are read without them. */
  image?: ReadImageOptions;
}

/** What a loader produces for sample i before augmentation. */
export interface RawSample {
  name: string;
  /** `size * size * 3`, 0..255 (rounded). */
  image: Uint8Array;
  target: Float32Array;
}

const diskCacheVersion = 1;

/** Base class: caching, augmentation and index checks; loaders implement `load`. */
export abstract class CachedDataset implements Dataset {
  abstract readonly channels: string[];
  readonly imageSize: number;
  readonly outSize: number;
  protected readonly augment?: AugmentOptions;
  private readonly memory?: Map<number, RawSample>;
  private readonly cacheDir?: string;
  /** What the loaders pass to `readImage` for the images (not the masks). */
  protected readonly imageOptions: ReadImageOptions;

  constructor(
    protected readonly what: string,
    opts: LoaderOptions,
  ) {
    this.imageSize = checkSide('imageSize', opts.imageSize ?? 256);
    this.outSize = checkSide('outSize', opts.outSize ?? this.imageSize);
    if (opts.augment) {
      const parsed = augmentSchema.safeParse(opts.augment === true ? {} : opts.augment);
      if (!parsed.success) throw new PeftError(`${what}: invalid augmentation option ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
      this.augment = parsed.data;
    }
    if (opts.memoryCache ?? true) this.memory = new Map();
    this.cacheDir = opts.cacheDir;
    this.imageOptions = { ...opts.image };
  }

  abstract get length(): number;
  /** Decodes and resizes sample i (no augmentation). */
  protected abstract load(i: number): Promise<RawSample>;
  /** Source files of sample i, for the disk cache key and the header checks: the image first, then its masks. */
  protected abstract sources(i: number): string[];
  /** Sample i's name, for messages. */
  protected abstract sampleName(i: number): string;

  /**
   * Sample i's files checked from their headers, before any is decoded: each
   * file's format, dimensions and declared sizes (`readImageFileHeader`, the
   * image with the dataset's image options, the masks without), and the
   * bytes they decode to together against `imageLimits.maxSampleBytes`.
   */
  async sampleProblems(i: number): Promise<string[]> {
    const budget = new SampleBudget(this.sampleName(i));
    const problems: string[] = [];
    for (const [k, file] of this.sources(i).entries()) {
      try {
        budget.take(file, (await readImageFileHeader(file, k === 0 ? this.imageOptions : {})).decodedBytes);
      } catch (err) {
        if (!(err instanceof PeftError)) throw err;
        problems.push(err.message);
      }
    }
    return problems;
  }

  async get(i: number, rng?: Rng): Promise<Sample> {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new PeftError(`${this.what}: sample index ${i} out of range (0..${this.length - 1})`);
    }
    const raw = await this.raw(i);
    const image = Float32Array.from(raw.image);
    const channels = this.channels.length;
    let target = raw.target;
    let img: Float32Array = image;
    if (rng && this.augment) {
      const params = drawAugment(rng, this.augment);
      ({ image: img, target } = augmentSample(image, this.imageSize, target, this.outSize, channels, params));
    }
    if (target === raw.target) target = Float32Array.from(target); // callers may mutate
    return { name: raw.name, image: img, target, size: this.imageSize, outSize: this.outSize, channels };
  }

  private async raw(i: number): Promise<RawSample> {
    const hit = this.memory?.get(i);
    if (hit) return hit;
    let sample = this.cacheDir ? await this.readDisk(i) : undefined;
    if (!sample) {
      // the sample's files together within their budget before any of them is decoded
      const problems = await this.sampleProblems(i);
      if (problems.length) throw new PeftError(problems[0]!);
      sample = await this.load(i);
      if (this.cacheDir) await this.writeDisk(i, sample);
    }
    this.memory?.set(i, sample);
    return sample;
  }

  private async diskKey(i: number): Promise<string> {
    const h = createHash('sha256');
    h.update(`v${diskCacheVersion} ${this.imageSize} ${this.outSize} ${this.channels.join(',')}\n`);
    // only when set, so the keys of caches written before these options existed stay valid
    if (this.imageOptions.window || this.imageOptions.frame !== undefined) h.update(`image ${JSON.stringify(this.imageOptions)}\n`);
    for (const f of this.sources(i)) {
      const st = await stat(f);
      h.update(`${f} ${st.size} ${st.mtimeMs}\n`);
    }
    return h.digest('hex').slice(0, 32);
  }

  private async readDisk(i: number): Promise<RawSample | undefined> {
    try {
      const buf = await readFile(join(this.cacheDir!, `${await this.diskKey(i)}.bin`));
      const headerLen = buf.readUInt32LE(0);
      const header = JSON.parse(buf.subarray(4, 4 + headerLen).toString('utf8')) as { name: string; image: number; target: number };
      const s = this.imageSize * this.imageSize * 3;
      const t = this.outSize * this.outSize * this.channels.length;
      if (header.image !== s || header.target !== t || buf.length !== 4 + headerLen + s + t * 4) return undefined;
      const image = new Uint8Array(buf.subarray(4 + headerLen, 4 + headerLen + s));
      const target = new Float32Array(t);
      new Uint8Array(target.buffer).set(buf.subarray(4 + headerLen + s));
      return { name: header.name, image, target };
    } catch {
      return undefined; // a missing or unreadable cache entry is just a miss
    }
  }

  private async writeDisk(i: number, sample: RawSample): Promise<void> {
    try {
      makeDir(this.cacheDir!);
      const header = Buffer.from(JSON.stringify({ name: sample.name, image: sample.image.length, target: sample.target.length }));
      const len = Buffer.alloc(4);
      len.writeUInt32LE(header.length, 0);
      const body = Buffer.concat([len, header, Buffer.from(sample.image.buffer, sample.image.byteOffset, sample.image.byteLength), Buffer.from(sample.target.buffer, sample.target.byteOffset, sample.target.byteLength)]);
      const path = join(this.cacheDir!, `${await this.diskKey(i)}.bin`);
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, body);
      await rename(tmp, path);
    } catch (err) {
      await rm(join(this.cacheDir!, `${await this.diskKey(i).catch(() => 'x')}.bin.${process.pid}.tmp`), { force: true }).catch(() => {});
      throw new PeftError(`${this.cacheDir}: cannot write the data cache (${errorReason(err)})`);
    }
  }
}

/** Most bad files `checkSamples` names in its message; the others are counted. */
export const MAX_BAD_FILES_NAMED = 5;

/**
 * Checks every sample of the datasets from their files' headers
 * (`sampleProblems`: no pixel decoded, a few kB read from most files), so that
 * a bad file is found before a run trains, not at its first validation.
 * Throws one PeftError naming the first bad files and counting all of them.
 */
export async function checkSamples(sets: Dataset[]): Promise<void> {
  const problems: string[] = [];
  let samples = 0;
  let badSamples = 0;
  // the same dataset twice (validation on the training set) is checked once
  for (const ds of new Set(sets)) {
    if (!ds.sampleProblems) continue;
    for (let i = 0; i < ds.length; i++) {
      samples++;
      const found = await ds.sampleProblems(i);
      if (found.length) badSamples++;
      problems.push(...found);
    }
  }
  if (problems.length === 0) return;
  const named = problems.slice(0, MAX_BAD_FILES_NAMED).join('; ');
  const more = problems.length > MAX_BAD_FILES_NAMED ? `; and ${problems.length - MAX_BAD_FILES_NAMED} more` : '';
  const count = problems.length === 1 ? '1 bad file' : `${problems.length} bad files in ${badSamples} of ${samples} samples`;
  throw new PeftError(`${count} (checked before training): ${named}${more}`);
}

function checkSide(name: string, v: number): number {
  const flag = name === 'imageSize' ? ' (--image-size)' : name === 'outSize' ? ' (--out-size)' : '';
  if (!Number.isInteger(v) || v < 8 || v > 4096) throw new PeftError(`${name}${flag} must be an integer between 8 and 4096, got ${v}`);
  return v;
}

/** Rounds resized 0..255 floats to bytes. */
export function toBytes(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Math.round(values[i]!);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

export interface DataBatch {
  /** `[B, S, S, 3]` 0..255 floats (the backbone's preprocess normalises). */
  images: tf.Tensor4D;
  /** `[B, o, o, C]` soft targets. */
  targets: tf.Tensor4D;
  names: string[];
}

/** Stacks samples into tensors; the caller disposes them. */
export function toBatch(samples: Sample[]): DataBatch {
  if (samples.length === 0) throw new Error('toBatch: no samples');
  const { size, outSize, channels } = samples[0]!;
  for (const s of samples) {
    if (s.size !== size || s.outSize !== outSize || s.channels !== channels) {
      throw new Error(`toBatch: sample ${s.name} is ${s.size}/${s.outSize}/${s.channels}, expected ${size}/${outSize}/${channels}`);
    }
  }
  const b = samples.length;
  const img = new Float32Array(b * size * size * 3);
  const tgt = new Float32Array(b * outSize * outSize * channels);
  samples.forEach((s, i) => {
    img.set(s.image, i * size * size * 3);
    tgt.set(s.target, i * outSize * outSize * channels);
  });
  return {
    images: tf.tensor4d(img, [b, size, size, 3]),
    targets: tf.tensor4d(tgt, [b, outSize, outSize, channels]),
    names: samples.map((s) => s.name),
  };
}

/**
 * Fetches samples `indices` and batches them. With `rng`, each sample gets its
 * own stream seeded by a draw from `rng` (so successive batches differ, and a
 * run is reproducible from the seed of `rng`).
 */
export async function loadBatch(ds: Dataset, indices: number[], rng?: Rng): Promise<DataBatch> {
  const streams = indices.map(() => (rng ? new Rng(rng.uint32(), 'augment') : undefined));
  const samples = await Promise.all(indices.map((i, k) => ds.get(i, streams[k])));
  return toBatch(samples);
}
