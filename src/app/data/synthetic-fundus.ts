// A synthetic fundus dataset in the exact REFUGE layout, deterministic from a
// seed (own PRNG; jpeg-js and fast-png encode deterministically, so the same
// seed gives the same bytes). Each sample: an orange-red textured fundus disc
// on black with uneven illumination, vessels radiating from the optic disc, a
// bright optic disc with a brighter cup inside (size, position, shape,
// contrast and edge softness vary), blur and noise; and 7 rater masks per
// structure (cup, disc) whose boundaries are jittered around the true shape
// (cup raters disagree more, as in REFUGE), PNG grey 0/255, cup within disc.
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PeftError, errorReason } from '../../core/errors.js';
import { encodeJpeg, encodePng } from './image-io.js';
import { Rng } from './random.js';
import { refugeRaters, refugeSplits } from './refuge.js';
import { makeDir } from '../../core/io/make-dir.js';

export const synthMarkerFile = 'peft-synth.json';
export const synthGeneratorVersion = 1;

export interface SynthOptions {
  /** Number of samples (train + test). Default 40. */
  n?: number;
  /** Side in pixels. Default 256. */
  size?: number;
  /** Default 0. */
  seed?: number;
  /** Fraction of samples in Training-400 (the rest in Test-400). Default 0.8. */
  trainFraction?: number;
}

export interface SynthMarker {
  generator: 'peftjs synthetic fundus';
  version: number;
  seed: number;
  n: number;
  size: number;
  splits: Record<string, string[]>;
}

/** A closed shape: an ellipse whose radius is modulated by low harmonics. */
export interface Shape {
  cx: number;
  cy: number;
  /** semi-axes in pixels */
  ax: number;
  ay: number;
  /** rotation (radians) */
  angle: number;
  /** radius modulation `1 + sum a_m sin(m phi + p_m)`, m = 2.. */
  harmonics: Array<{ m: number; a: number; p: number }>;
}

export interface FundusSample {
  name: string;
  size: number;
  /** `size * size * 3` RGB */
  image: Uint8Array;
  /** 7 grey masks each, `size * size`, 0 or 255 */
  cup: Uint8Array[];
  disc: Uint8Array[];
  truth: { disc: Shape; cup: Shape };
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
const smoothstep = (e0: number, e1: number, x: number) => {
  const t = clamp01((x - e0) / (e1 - e0));
  return t * t * (3 - 2 * t);
};

/** Normalised radial coordinate of a point relative to a shape (1 on the boundary). */
function shapeRho(s: Shape, x: number, y: number): number {
  const dx = x - s.cx;
  const dy = y - s.cy;
  const c = Math.cos(s.angle);
  const sn = Math.sin(s.angle);
  const u = (dx * c + dy * sn) / s.ax;
  const v = (-dx * sn + dy * c) / s.ay;
  const rho = Math.sqrt(u * u + v * v);
  const phi = Math.atan2(v, u);
  let r = 1;
  for (const h of s.harmonics) r += h.a * Math.sin(h.m * phi + h.p);
  return rho / r;
}

function jitterShape(s: Shape, rng: Rng, amount: { shift: number; scale: number; wobble: number }): Shape {
  const r = (s.ax + s.ay) / 2;
  const scale = Math.max(0.5, 1 + rng.normal(0, amount.scale));
  return {
    cx: s.cx + rng.normal(0, amount.shift * r),
    cy: s.cy + rng.normal(0, amount.shift * r),
    ax: s.ax * scale * (1 + rng.normal(0, amount.scale / 3)),
    ay: s.ay * scale * (1 + rng.normal(0, amount.scale / 3)),
    angle: s.angle + rng.normal(0, 0.1),
    harmonics: [
      ...s.harmonics,
      ...[2, 3, 4, 5].map((m) => ({ m, a: rng.normal(0, amount.wobble), p: rng.uniform(0, 2 * Math.PI) })),
    ],
  };
}

function rasterise(s: Shape, size: number, within?: Uint8Array): Uint8Array {
  const out = new Uint8Array(size * size);
  const reach = Math.max(s.ax, s.ay) * 1.6 + 2;
  const x0 = Math.max(0, Math.floor(s.cx - reach));
  const x1 = Math.min(size - 1, Math.ceil(s.cx + reach));
  const y0 = Math.max(0, Math.floor(s.cy - reach));
  const y1 = Math.min(size - 1, Math.ceil(s.cy + reach));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * size + x;
      if (shapeRho(s, x + 0.5, y + 0.5) < 1 && (!within || within[i])) out[i] = 255;
    }
  }
  return out;
}

/** Smooth value noise in [0, 1] with a few octaves. */
function valueNoise(rng: Rng, size: number, octaves: Array<[cells: number, weight: number]>): Float32Array {
  const out = new Float32Array(size * size);
  let total = 0;
  for (const [cells, weight] of octaves) {
    const g = cells + 1;
    const grid = new Float32Array(g * g);
    for (let i = 0; i < grid.length; i++) grid[i] = rng.next();
    for (let y = 0; y < size; y++) {
      const fy = (y / size) * cells;
      const iy = Math.min(cells - 1, Math.floor(fy));
      const ty = smoothstep(0, 1, fy - iy);
      for (let x = 0; x < size; x++) {
        const fx = (x / size) * cells;
        const ix = Math.min(cells - 1, Math.floor(fx));
        const tx = smoothstep(0, 1, fx - ix);
        const a = grid[iy * g + ix]! * (1 - tx) + grid[iy * g + ix + 1]! * tx;
        const b = grid[(iy + 1) * g + ix]! * (1 - tx) + grid[(iy + 1) * g + ix + 1]! * tx;
        out[y * size + x]! += weight * (a * (1 - ty) + b * ty);
      }
    }
    total += weight;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

/** Vessel darkness map in [0, 1]: tapered random-walk trees radiating from (ox, oy). */
function vessels(rng: Rng, size: number, ox: number, oy: number, discR: number): Float32Array {
  const map = new Float32Array(size * size);
  const stamp = (x: number, y: number, w: number, strength: number) => {
    const r = w / 2 + 1;
    const xa = Math.max(0, Math.floor(x - r));
    const xb = Math.min(size - 1, Math.ceil(x + r));
    const ya = Math.max(0, Math.floor(y - r));
    const yb = Math.min(size - 1, Math.ceil(y + r));
    for (let py = ya; py <= yb; py++) {
      for (let px = xa; px <= xb; px++) {
        const d = Math.hypot(px + 0.5 - x, py + 0.5 - y);
        const v = strength * (1 - smoothstep(w / 2 - 0.6, w / 2 + 0.6, d));
        const i = py * size + px;
        if (v > map[i]!) map[i] = v;
      }
    }
  };
  const grow = (x: number, y: number, theta: number, width: number, length: number, depth: number) => {
    const step = Math.max(1, size * 0.006);
    const steps = Math.ceil(length / step);
    let curl = rng.normal(0, 0.012);
    const w0 = width;
    for (let k = 0; k < steps; k++) {
      const t = k / steps;
      const w = Math.max(0.8, w0 * (1 - 0.6 * t));
      stamp(x, y, w, 0.85 - 0.3 * t);
      curl += rng.normal(0, 0.005);
      curl *= 0.95;
      theta += curl + rng.normal(0, 0.03);
      x += Math.cos(theta) * step;
      y += Math.sin(theta) * step;
      if (x < -size * 0.1 || x > size * 1.1 || y < -size * 0.1 || y > size * 1.1) break;
      if (depth < 2 && k > 3 && rng.next() < 0.035) {
        const side = rng.bool() ? 1 : -1;
        grow(x, y, theta + side * rng.uniform(0.35, 0.9), w * 0.7, (length - k * step) * rng.uniform(0.4, 0.8), depth + 1);
      }
    }
  };
  const trunks = 6 + rng.int(6);
  const base = rng.uniform(0, 2 * Math.PI);
  for (let k = 0; k < trunks; k++) {
    const theta = base + (2 * Math.PI * k) / trunks + rng.normal(0, 0.25);
    const width = size * rng.uniform(0.008, 0.016);
    const start = discR * rng.uniform(0, 0.3);
    grow(ox + Math.cos(theta) * start, oy + Math.sin(theta) * start, theta, width, size * rng.uniform(0.3, 0.6), 0);
  }
  return map;
}

function boxBlur(img: Float32Array, size: number, c: number, radius: number): Float32Array {
  if (radius <= 0) return img;
  const pass = (src: Float32Array, horizontal: boolean) => {
    const out = new Float32Array(src.length);
    for (let a = 0; a < size; a++) {
      for (let b = 0; b < size; b++) {
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          let n = 0;
          for (let k = -radius; k <= radius; k++) {
            const bb = b + k;
            if (bb < 0 || bb >= size) continue;
            const idx = horizontal ? (a * size + bb) * c + ch : (bb * size + a) * c + ch;
            acc += src[idx]!;
            n++;
          }
          out[(horizontal ? a * size + b : b * size + a) * c + ch] = acc / n;
        }
      }
    }
    return out;
  };
  return pass(pass(img, true), false);
}

/** Renders sample `index` of the dataset with `seed`. */
export function renderFundusSample(seed: number, index: number, size: number, name = sampleName(index)): FundusSample {
  const rng = new Rng('peftjs-synth-fundus', synthGeneratorVersion, seed, index);
  const S = size;
  // fundus field and illumination
  const fx = S / 2 + rng.normal(0, 0.01 * S);
  const fy = S / 2 + rng.normal(0, 0.01 * S);
  const fr = S * rng.uniform(0.44, 0.49);
  const baseR = rng.uniform(165, 225);
  const baseG = rng.uniform(55, 100);
  const baseB = rng.uniform(20, 50);
  const vignette = rng.uniform(0.2, 0.45);
  const gradDir = rng.uniform(0, 2 * Math.PI);
  const gradAmp = rng.uniform(0, 0.18);
  const textureAmp = rng.uniform(0.08, 0.18);
  // optic disc (left or right eye) and cup
  const side = rng.bool() ? 1 : -1;
  const discR = S * rng.uniform(0.065, 0.11);
  const disc: Shape = {
    cx: fx + side * S * rng.uniform(0.1, 0.24),
    cy: fy + rng.normal(0, 0.05 * S),
    ax: discR,
    ay: discR * rng.uniform(1.0, 1.15),
    angle: rng.normal(0, 0.15),
    harmonics: [2, 3].map((m) => ({ m, a: rng.normal(0, 0.03), p: rng.uniform(0, 2 * Math.PI) })),
  };
  const cdr = rng.uniform(0.3, 0.72);
  const cup: Shape = {
    cx: disc.cx - side * discR * rng.uniform(0, 0.15),
    cy: disc.cy + rng.normal(0, 0.05 * discR),
    ax: discR * cdr,
    ay: discR * cdr * rng.uniform(0.95, 1.15),
    angle: rng.normal(0, 0.2),
    harmonics: [2, 3].map((m) => ({ m, a: rng.normal(0, 0.04), p: rng.uniform(0, 2 * Math.PI) })),
  };
  const discContrast = rng.uniform(0.45, 1);
  const cupContrast = rng.uniform(0.45, 1);
  const discEdge = rng.uniform(0.08, 0.25);
  const cupEdge = rng.uniform(0.12, 0.35);
  const discTint = [rng.uniform(25, 55), rng.uniform(45, 85), rng.uniform(20, 45)];
  const cupTint = [rng.uniform(15, 35), rng.uniform(25, 50), rng.uniform(15, 40)];
  const vesselContrast = rng.uniform(0.35, 0.7);
  const blur = S >= 128 ? rng.int(2) : 0;
  const noise = rng.uniform(1.5, 5);

  const texture = valueNoise(rng.derive('texture'), S, [[4, 0.45], [8, 0.25], [16, 0.18], [32, 0.12]]);
  const vmap = vessels(rng.derive('vessels'), S, disc.cx, disc.cy, discR);

  const img = new Float32Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const i = y * S + x;
      const r = Math.hypot(px - fx, py - fy) / fr;
      const field = 1 - smoothstep(0.985, 1.0, r);
      if (field <= 0) continue;
      const light = (1 - vignette * r * r) * (1 + gradAmp * (((px - fx) * Math.cos(gradDir) + (py - fy) * Math.sin(gradDir)) / fr));
      const tex = 1 + textureAmp * (texture[i]! - 0.5) * 2;
      let rr = baseR * light * tex;
      let gg = baseG * light * tex;
      let bb = baseB * light * tex;
      const dRho = shapeRho(disc, px, py);
      const dA = discContrast * (1 - smoothstep(1 - discEdge, 1 + discEdge, dRho));
      const cRho = shapeRho(cup, px, py);
      const cA = cupContrast * (1 - smoothstep(1 - cupEdge, 1 + cupEdge, cRho));
      rr += discTint[0]! * dA + cupTint[0]! * cA;
      gg += discTint[1]! * dA + cupTint[1]! * cA;
      bb += discTint[2]! * dA + cupTint[2]! * cA;
      const v = vmap[i]! * vesselContrast;
      rr *= 1 - 0.55 * v;
      gg *= 1 - 0.75 * v;
      bb *= 1 - 0.7 * v;
      img[i * 3] = rr * field;
      img[i * 3 + 1] = gg * field;
      img[i * 3 + 2] = bb * field;
    }
  }
  const blurred = boxBlur(img, S, 3, blur);
  const noiseRng = rng.derive('noise');
  const image = new Uint8Array(S * S * 3);
  for (let i = 0; i < blurred.length; i++) {
    const v = Math.round(blurred[i]! + noiseRng.normal(0, noise));
    image[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }

  const raterRng = rng.derive('raters');
  const discMasks: Uint8Array[] = [];
  const cupMasks: Uint8Array[] = [];
  for (let k = 0; k < refugeRaters; k++) {
    const d = rasterise(jitterShape(disc, raterRng, { shift: 0.02, scale: 0.03, wobble: 0.015 }), S);
    const c = rasterise(jitterShape(cup, raterRng, { shift: 0.05, scale: 0.08, wobble: 0.03 }), S, d);
    discMasks.push(d);
    cupMasks.push(c);
  }
  return { name, size: S, image, cup: cupMasks, disc: discMasks, truth: { disc, cup } };
}

export function sampleName(index: number): string {
  return `S${String(index + 1).padStart(4, '0')}`;
}

/** Sample names per split for the options. */
export function synthSplits(opts: Required<Pick<SynthOptions, 'n'>> & SynthOptions): { train: string[]; test: string[] } {
  const n = opts.n;
  const nTrain = n <= 1 ? n : Math.min(n - 1, Math.max(1, Math.round(n * (opts.trainFraction ?? 0.8))));
  const names = Array.from({ length: n }, (_, i) => sampleName(i));
  return { train: names.slice(0, nTrain), test: names.slice(nTrain) };
}

export function checkSynthOptions(opts: SynthOptions): Required<Omit<SynthOptions, 'trainFraction'>> & { trainFraction: number } {
  const n = opts.n ?? 40;
  const size = opts.size ?? 256;
  const seed = opts.seed ?? 0;
  const trainFraction = opts.trainFraction ?? 0.8;
  if (!Number.isInteger(n) || n < 2 || n > 100000) throw new PeftError(`--n must be an integer between 2 and 100000, got ${n}`);
  if (!Number.isInteger(size) || size < 32 || size > 4096) throw new PeftError(`--size must be an integer between 32 and 4096, got ${size}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new PeftError(`--seed must be a non-negative integer, got ${seed}`);
  if (!(trainFraction > 0 && trainFraction < 1)) throw new PeftError(`trainFraction must be in (0, 1), got ${trainFraction}`);
  return { n, size, seed, trainFraction };
}

/** The files a sample writes, relative to the dataset root. */
export function sampleFiles(split: string, name: string): string[] {
  const files = [`${split}/${name}/${name}.jpg`];
  for (let k = 1; k <= refugeRaters; k++) files.push(`${split}/${name}/${name}_seg_cup_${k}.png`, `${split}/${name}/${name}_seg_disc_${k}.png`);
  return files;
}

export interface SynthSummary {
  dir: string;
  train: number;
  test: number;
  size: number;
  seed: number;
  files: number;
  bytes: number;
}

/** Files and bytes written. */
export interface WriteCounts {
  files: number;
  bytes: number;
}

/**
 * Writes samples `from` .. `to - 1` (indices over Training-400 then Test-400)
 * into `dir`, whose split folders exist. A sample depends only on the seed and
 * its index, so any division of the range gives the same bytes. Errors are the
 * file system's own.
 */
export function writeSampleRange(dir: string, options: SynthOptions, from: number, to: number): WriteCounts {
  const opts = checkSynthOptions(options);
  const splits = synthSplits(opts);
  const counts: WriteCounts = { files: 0, bytes: 0 };
  const put = (rel: string, data: Uint8Array) => {
    writeFileSync(join(dir, rel), data);
    counts.files++;
    counts.bytes += data.byteLength;
  };
  for (let index = from; index < to; index++) {
    const train = index < splits.train.length;
    const folder = train ? refugeSplits.train : refugeSplits.test;
    const name = train ? splits.train[index]! : splits.test[index - splits.train.length]!;
    const s = renderFundusSample(opts.seed, index, opts.size, name);
    makeDir(join(dir, folder, name));
    put(`${folder}/${name}/${name}.jpg`, encodeJpeg({ width: s.size, height: s.size, channels: 3, data: s.image }, 92));
    for (let k = 0; k < refugeRaters; k++) {
      put(`${folder}/${name}/${name}_seg_cup_${k + 1}.png`, encodePng({ width: s.size, height: s.size, channels: 1, data: s.cup[k]! }));
      put(`${folder}/${name}/${name}_seg_disc_${k + 1}.png`, encodePng({ width: s.size, height: s.size, channels: 1, data: s.disc[k]! }));
    }
  }
  return counts;
}

/** The worker that runs `writeSampleRange` off the main thread; absent when running from the TypeScript sources. */
const workerFile = fileURLToPath(new URL('./synth-worker.js', import.meta.url));

/** At least this many samples per worker: below it a thread costs more than it saves. */
const samplesPerWorker = 64;

/** `writeSampleRange` over `[0, n)` split into `parts` contiguous ranges, each in a worker thread. */
async function writeInWorkers(dir: string, opts: SynthOptions, n: number, parts: number): Promise<WriteCounts> {
  const workers: Worker[] = [];
  const run = (from: number, to: number) =>
    new Promise<WriteCounts>((done, fail) => {
      const w = new Worker(workerFile, { workerData: { dir, opts, from, to } });
      workers.push(w);
      let result: WriteCounts | undefined;
      w.on('message', (m: { counts?: WriteCounts; error?: { message: string; code?: string } }) => {
        if (m.counts) result = m.counts;
        else fail(Object.assign(new Error(m.error?.message ?? 'synth worker failed'), { code: m.error?.code }));
      });
      w.on('error', fail);
      w.on('exit', (code) => (result ? done(result) : fail(new Error(`synth worker exited with code ${code}`))));
    });
  const ranges = Array.from({ length: parts }, (_, i) => [Math.floor((i * n) / parts), Math.floor(((i + 1) * n) / parts)] as const);
  try {
    const counts = await Promise.all(ranges.map(([from, to]) => run(from, to)));
    return { files: counts.reduce((a, c) => a + c.files, 0), bytes: counts.reduce((a, c) => a + c.bytes, 0) };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * Writes the dataset into `dir` (created; it should be new or empty — the
 * callers `synthesize` and `ensureDefaultDataset` decide where it may go), on
 * up to `threads` worker threads (default: the machine's cores); the bytes are
 * the same for any number.
 */
export async function writeSyntheticFundus(dir: string, options: SynthOptions = {}, threads = availableParallelism()): Promise<SynthSummary> {
  const opts = checkSynthOptions(options);
  const splits = synthSplits(opts);
  const bySplit: Record<string, string[]> = { [refugeSplits.train]: splits.train, [refugeSplits.test]: splits.test };
  try {
    for (const folder of Object.keys(bySplit)) makeDir(join(dir, folder));
    const parts = Math.max(1, Math.min(Math.floor(threads), Math.floor(opts.n / samplesPerWorker)));
    const counts = parts > 1 && existsSync(workerFile) ? await writeInWorkers(dir, opts, opts.n, parts) : writeSampleRange(dir, opts, 0, opts.n);
    const marker: SynthMarker = { generator: 'peftjs synthetic fundus', version: synthGeneratorVersion, seed: opts.seed, n: opts.n, size: opts.size, splits: bySplit };
    const text = `${JSON.stringify(marker, null, 2)}\n`;
    writeFileSync(join(dir, synthMarkerFile), text);
    return { dir, train: splits.train.length, test: splits.test.length, size: opts.size, seed: opts.seed, files: counts.files + 1, bytes: counts.bytes + Buffer.byteLength(text) };
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${dir}: cannot write the synthetic dataset (${errorReason(err)})`, { cause: err });
  }
}
