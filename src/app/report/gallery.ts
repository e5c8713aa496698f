// The report's pictures: each run's model is rebuilt from its folder (best
// checkpoint, else last), re-scored image by image as `peft eval` scores it,
// and drawn. Per dataset, the same K validation images (spread evenly over
// the split: index floor((j + ½)·N/K)) across every run side by side — the
// image with its prompt, the ground truth, each run's prediction with its
// Dice — and each run's worst images (lowest Dice, found in a pass over the
// whole split). A run that cannot be re-evaluated (its plugin is not loaded,
// no checkpoint, its data is gone) becomes one line in the page and a warning.
import { PeftError } from '../../core/errors.js';
import type { Registry } from '../../core/registry/registry.js';
import type { Dataset, Sample } from '../data/dataset.js';
import { openRunModel, resolveRunCheckpoint } from '../runs/merge-run.js';
import { openDatasets, readRunSpec, requireRunPlugins, RUN_FILE, type RunSpec } from '../runs/run-spec.js';
import { promptModes } from '../train/prompts.js';
import { join } from 'node:path';
import { drawPicture, PICTURE_SIDE, type PictureMasks } from './picture.js';
import type { PageImage } from './page-image.js';
import { datasetName } from './names.js';
import { evalPrompts, scalePrompt, scoreImages, type ImageScore, type SizedPrompt } from './rescore.js';
import type { ResultRow } from './types.js';

export interface GalleryOptions {
  /** The loaded plugins: runs are rebuilt with them. */
  registry: Registry;
  /** Images shown across all runs, per dataset (0: no section; `writeReport` then skips it). */
  samples: number;
  /** Each run's worst images (default 3; 0: none, and no pass over the whole split). */
  worst?: number;
  /** 'best' (default, else last), 'last'. */
  checkpoint?: 'best' | 'last';
  /** Where a run that cannot be re-evaluated is reported (besides the page). */
  warn?(line: string): void;
}

/** A picture with the Dice of the prediction it shows. */
export interface ScoredPicture extends ImageScore {
  picture: PageImage;
}

export interface GalleryRun {
  label: string;
  dir: string;
  /** The checkpoint folder the predictions come from. */
  checkpoint: string;
  /** Images of the split this run scored. */
  scored: number;
  /** One per shown image, in the group's order. */
  predictions: ScoredPicture[];
  /** Lowest Dice first. */
  worst: (ScoredPicture & { truth: PageImage })[];
  /** Whether this run's own `peft eval` draws other prompts than the shown ones (other seed, batch, prompt kind or sizes). */
  otherPrompts: boolean;
}

export interface GalleryGroup {
  dataset: string;
  classes: string[];
  /** Images in the validation split. */
  splitSize: number;
  /** How the shared prompts were drawn, in words. */
  prompts: string;
  images: { index: number; name: string; image: PageImage; truth: PageImage }[];
  runs: GalleryRun[];
}

export interface GallerySection {
  /** The checkpoint asked for ('best' falls back to 'last'). */
  checkpoint: 'best' | 'last';
  samples: number;
  worst: number;
  groups: GalleryGroup[];
  /** Runs that could not be re-evaluated: one line each. */
  skipped: { label: string; dir: string; reason: string }[];
  /** Wall time of the whole section, seconds. */
  seconds: number;
}

/** Refuses, in one line naming the flag, a count that is not a non-negative integer. */
export function checkGalleryOptions(o: GalleryOptions): void {
  for (const [flag, v] of [['--samples', o.samples], ['--worst', o.worst ?? 0]] as const) {
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new PeftError(`${flag} must be a whole number of images (0 or more), got ${v}`);
  }
  if (o.checkpoint !== undefined && o.checkpoint !== 'best' && o.checkpoint !== 'last') throw new PeftError(`--checkpoint must be best or last, got '${String(o.checkpoint)}'`);
}

/** K indices spread evenly over a split of n images: floor((j + ½)·n/K), j < min(K, n). */
export function sampleIndices(n: number, k: number): number[] {
  const m = Math.min(k, n);
  return Array.from({ length: m }, (_, j) => Math.floor(((j + 0.5) * n) / m));
}

/** The settings eval's prompts follow, as run.json holds them (a hand-edited file may not). */
function checkEvalSettings(dir: string, spec: RunSpec): void {
  const o = spec.options;
  const bad = !(Number.isSafeInteger(o.batch) && o.batch >= 1)
    ? 'options.batch'
    : !Number.isSafeInteger(o.seed)
      ? 'options.seed'
      : !promptModes.includes(o.prompt)
        ? 'options.prompt'
        : !(Number.isSafeInteger(spec.imageSize) && Number.isSafeInteger(spec.outSize))
          ? 'imageSize or outSize'
          : undefined;
  if (bad) throw new PeftError(`${join(dir, RUN_FILE)}: ${bad} is not what peft train writes`);
}

/** A run ready to be re-evaluated. */
interface Ready {
  row: ResultRow;
  spec: RunSpec;
  checkpoint: string;
  val: Dataset;
  key: string;
}

/** A scored image with what its picture needs. */
interface Scored {
  score: ImageScore;
  masks: PictureMasks;
}

const firstLine = (s: string) => s.split('\n')[0]!.trim();

const fmt = (x: number) => x.toFixed(3);

/** Writes a file of the report (relative path) and returns nothing; the report tracks what it wrote. */
export type WriteFile = (rel: string, data: Uint8Array | string) => void;

/**
 * Builds the section: re-evaluates every run of `rows` and writes its pictures
 * under `pictures/` with `write`. Only a PeftError (a user-side cause) turns a
 * run into a skipped line; anything else is a bug and is thrown.
 */
export async function buildGallery(rows: ResultRow[], options: GalleryOptions, write: WriteFile): Promise<GallerySection> {
  const t0 = performance.now();
  const worstCount = options.worst ?? 3;
  const which = options.checkpoint ?? 'best';
  const skipped: GallerySection['skipped'] = [];
  const skip = (row: ResultRow, err: unknown) => {
    if (!(err instanceof PeftError)) throw err;
    const reason = firstLine(err.message);
    skipped.push({ label: row.label, dir: row.dir, reason });
    options.warn?.(`no pictures of ${row.dir} in the report: ${reason}`);
  };

  // every check a run can fail before its model is built, in the order a user fixes them
  const ready: Ready[] = [];
  for (const row of rows) {
    try {
      const spec = readRunSpec(row.dir);
      checkEvalSettings(row.dir, spec);
      requireRunPlugins(options.registry, row.dir, spec);
      const checkpoint = resolveRunCheckpoint(row.dir, which);
      const { val } = await openDatasets(spec);
      const key = JSON.stringify([spec.dataset.kind, spec.dataset.path, spec.dataset.valPath ?? null, val.channels]);
      ready.push({ row, spec, checkpoint, val, key });
    } catch (err) {
      skip(row, err);
    }
  }

  const groups: GalleryGroup[] = [];
  const keys = [...new Set(ready.map((r) => r.key))];
  for (const [g, key] of keys.entries()) {
    const members = ready.filter((r) => r.key === key);
    const ref = members[0]!;
    const n = ref.val.length;
    const shown = sampleIndices(n, options.samples);
    const everything = worstCount > 0 ? Array.from({ length: n }, (_, i) => i) : shown;
    const o = ref.spec.options;
    const prompts = await evalPrompts(ref.val, everything, { mode: o.prompt, seed: o.seed, batch: o.batch });
    // score every run first: the group's pictures are drawn only if one of them could be
    const scored: { r: Ready; m: number; kept: Map<number, Scored>; worst: Scored[] }[] = [];
    const isShown = new Set(shown);
    for (const [m, r] of members.entries()) {
      let peft: ReturnType<typeof openRunModel>['peft'];
      try {
        peft = openRunModel(options.registry, r.row.dir, r.checkpoint).peft;
      } catch (err) {
        skip(r.row, err);
        continue;
      }
      const kept = new Map<number, Scored>();
      const worst: Scored[] = [];
      try {
        peft.model.eval();
        await scoreImages(peft, r.val, {
          indices: everything,
          prompt: (i) => scalePrompt(prompts.get(i)!, r.spec.imageSize),
          mode: o.prompt,
          batch: o.batch,
          onImage: (score, sample, probability) => {
            const item = { score, masks: { probability, outSize: sample.outSize } };
            if (isShown.has(score.index)) kept.set(score.index, item);
            if (worstCount > 0) {
              worst.push(item);
              worst.sort((x, y) => x.score.dice - y.score.dice || x.score.index - y.score.index);
              worst.length = Math.min(worst.length, worstCount);
            }
          },
        });
        scored.push({ r, m, kept, worst });
      } catch (err) {
        skip(r.row, err);
      } finally {
        peft.dispose();
      }
    }
    if (scored.length === 0) continue;

    const dir = `pictures/${g + 1}`;
    const classes = ref.val.channels;
    const picture = async (name: string, index: number, masks: PictureMasks | undefined, withPrompt: boolean, alt: (sample: Sample) => string): Promise<PageImage> => {
      const sample = await ref.val.get(index);
      const prompt = withPrompt ? prompts.get(index) : undefined;
      write(`${dir}/${name}.png`, drawPicture(sample, masks, prompt && scalePrompt(prompt, sample.size)));
      return { src: `${dir}/${name}.png`, width: PICTURE_SIDE, height: PICTURE_SIDE, alt: alt(sample) };
    };
    const truths = new Map<number, PageImage>();
    const truth = async (index: number): Promise<PageImage> => {
      let t = truths.get(index);
      if (!t) {
        const s = await ref.val.get(index);
        t = await picture(`truth-${index}`, index, { probability: s.target, outSize: s.outSize }, false, (x) => `${x.name}: ground truth (${classes.join(', ')})`);
        truths.set(index, t);
      }
      return t;
    };
    const images: GalleryGroup['images'] = [];
    for (const index of shown) {
      const image = await picture(`image-${index}`, index, undefined, true, (x) => `${x.name}: the image and its prompt`);
      images.push({ index, name: (await ref.val.get(index)).name, image, truth: await truth(index) });
    }
    const runs: GalleryRun[] = [];
    for (const { r, m, kept, worst } of scored) {
      const predicted = async (item: Scored, kind: string): Promise<ScoredPicture> => ({
        ...item.score,
        picture: await picture(`run${m + 1}-${kind}-${item.score.index}`, item.score.index, item.masks, true, (x) => `${x.name}: prediction of ${r.row.label}, Dice ${fmt(item.score.dice)}`),
      });
      const predictions: ScoredPicture[] = [];
      for (const index of shown) predictions.push(await predicted(kept.get(index)!, 'shown'));
      const worstPictures: GalleryRun['worst'] = [];
      for (const item of worst) worstPictures.push({ ...(await predicted(item, 'worst')), truth: await truth(item.score.index) });
      const s = r.spec;
      const otherPrompts = s.options.seed !== o.seed || s.options.batch !== o.batch || s.options.prompt !== o.prompt || s.imageSize !== ref.spec.imageSize || s.outSize !== ref.spec.outSize;
      runs.push({ label: r.row.label, dir: r.row.dir, checkpoint: r.checkpoint, scored: everything.length, predictions, worst: worstPictures, otherPrompts });
    }
    groups.push({ dataset: datasetName(ref.spec.dataset.kind, ref.spec.dataset.path), classes, splitSize: n, prompts: promptWords(ref, classes), images, runs });
  }
  return { checkpoint: which, samples: options.samples, worst: worstCount, groups, skipped, seconds: (performance.now() - t0) / 1000 };
}

function promptWords(ref: Ready, classes: string[]): string {
  const o = ref.spec.options;
  if (o.prompt === 'none') return `no prompt (as ${ref.row.label} is evaluated)`;
  const kind = o.prompt === 'click' ? 'one click' : 'one jittered box';
  return `${kind} per image drawn from the ${classes[0]} mask as \`peft eval\` draws it for ${ref.row.label} (seed ${o.seed}, batch ${o.batch})`;
}

