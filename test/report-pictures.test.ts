// `peft report`'s Predictions section on two tiny trained runs: per-image Dice
// is `peft eval`'s (its mean over the split is eval's Dice), the shown images
// and worst images are the documented ones, a run without a checkpoint or
// whose plugin is not loaded is one line and a warning, the report's folder
// owns the pictures (removed with the section), and the page renders in
// Debian's headless Chromium with every picture loaded and Dice captions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { ensureDefaultDataset } from '../src/app/data/synth-output.js';
import type { RunSpec } from '../src/app/runs/run-spec.js';
import { openDatasets, readRunSpec } from '../src/app/runs/run-spec.js';
import { trainRun } from '../src/app/runs/train-run.js';
import { evaluateRun } from '../src/app/runs/evaluate-run.js';
import { openRunModel } from '../src/app/runs/merge-run.js';
import { REPORT_MARKER, writeReport } from '../src/app/report/index.js';
import { sampleIndices } from '../src/app/report/gallery.js';
import { evalPrompts, scalePrompt, scoreImages, type ImageScore } from '../src/app/report/rescore.js';
import { decodePng } from '../src/app/data/png.js';

const CHROMIUM = process.env.PEFT_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);

let registry: Registry;
let root: string;
/** Two trained runs (same data, seed, batch and prompts; different methods), then two that cannot be re-evaluated. */
let lora: string;
let adapter: string;
let noCheckpoint: string;
let notLoaded: string;
/** Every validation image of a run scored with its own eval prompts, outside the report: Dice, and BCE (pos_weight 2, eval's loss) from the probabilities, which moves with the prompt where a thresholded Dice may not. */
interface Scored {
  dice: ImageScore[];
  loss: number[];
}
let scored: Map<string, Scored>;

function bce(p: Float32Array, t: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += -(2 * t[i]! * Math.log(p[i]!) + (1 - t[i]!) * Math.log(1 - p[i]!));
  return sum / p.length;
}

async function scoreAll(dir: string): Promise<Scored> {
  const runSpec = readRunSpec(dir);
  const { val } = await openDatasets(runSpec);
  const all = Array.from({ length: val.length }, (_, i) => i);
  const o = runSpec.options;
  const prompts = await evalPrompts(val, all, { mode: o.prompt, seed: o.seed, batch: o.batch });
  const { peft } = openRunModel(registry, dir);
  const out: Scored = { dice: [], loss: [] };
  try {
    peft.model.eval();
    await scoreImages(peft, val, {
      indices: all,
      prompt: (i) => scalePrompt(prompts.get(i)!, runSpec.imageSize),
      mode: o.prompt,
      batch: o.batch,
      onImage: (score, sample, probability) => {
        out.dice.push(score);
        out.loss.push(bce(probability, sample.target));
      },
    });
  } finally {
    peft.dispose();
  }
  return out;
}

function spec(method: string, data: string, prompt: 'click' | 'box'): RunSpec {
  return {
    version: 1,
    createdAt: '2026-01-01T00:00:00Z',
    backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 64 } },
    method: { id: method, config: {} },
    trainDecoder: true,
    imageSize: 64,
    outSize: 16,
    dataset: { kind: 'refuge', path: data },
    augment: false,
    options: { batch: 2, lr: 3e-3, steps: 6, valEvery: 1, seed: 5, loss: 'bce', prompt },
  };
}

beforeAll(async () => {
  registry = await createDefaultRegistry();
  root = mkdtempSync(join(tmpdir(), 'peft-report-pictures-'));
  // 24 training and 6 validation images at 64 px
  const data = await ensureDefaultDataset(join(root, 'cache'), { n: 30, size: 64, seed: 3 });
  lora = join(root, 'runs', 'lora');
  adapter = join(root, 'runs', 'adapter');
  // a box prompt is jittered by the prompt stream: it shows whether the prompts are eval's (a 16 px cup's click often has one pixel to land on)
  await trainRun(registry, spec('lora', data, 'click'), lora);
  await trainRun(registry, spec('adapter', data, 'box'), adapter);
  // a copy without its checkpoints, and one whose method no loaded plugin registers
  noCheckpoint = join(root, 'runs', 'no-checkpoint');
  cpSync(lora, noCheckpoint, { recursive: true });
  rmSync(join(noCheckpoint, 'checkpoints'), { recursive: true });
  notLoaded = join(root, 'runs', 'not-loaded');
  cpSync(lora, notLoaded, { recursive: true });
  const s = JSON.parse(readFileSync(join(notLoaded, 'run.json'), 'utf8')) as RunSpec;
  s.method.id = 'dora_elsewhere';
  s.plugins = { method: { name: 'peftjs-dora-elsewhere', version: '0.1.0', path: join(root, 'gone-plugin') } };
  writeFileSync(join(notLoaded, 'run.json'), JSON.stringify(s));

  scored = new Map([[lora, await scoreAll(lora)], [adapter, await scoreAll(adapter)]]);
}, 600_000);

afterAll(() => {
  if (root && !process.env.PEFT_KEEP_REPORT_TEST) rmSync(root, { recursive: true, force: true });
});

describe('the report re-scores runs as peft eval does', () => {
  it('the means of the per-image Dice and loss over the split are eval\'s, with a click and with a box prompt', async () => {
    for (const dir of [lora, adapter]) {
      const { dice, loss } = scored.get(dir)!;
      expect(dice).toHaveLength(6);
      const { result } = await evaluateRun(registry, dir);
      // eval's loss is the mean over its (equal) batches of the batch mean, so the mean over images
      expect(loss.reduce((a, x) => a + x, 0) / loss.length, dir).toBeCloseTo(result.loss, 6);
      for (const c of ['cup', 'disc']) {
        expect(dice.reduce((a, s) => a + s.diceByClass[c]!, 0) / dice.length, `${dir} ${c}`).toBeCloseTo(result.dice[c]!, 10);
      }
      // the per-image scores are not all the same (a mean that matches by accident would need that)
      expect(new Set(dice.map((s) => s.dice.toFixed(6))).size).toBeGreaterThan(1);
    }
  });

  it('the shown images are spread evenly; prompts of an image do not depend on which images are asked for; prompts scale to another size', async () => {
    expect(sampleIndices(200, 4)).toEqual([25, 75, 125, 175]);
    expect(sampleIndices(6, 3)).toEqual([1, 3, 5]);
    expect(sampleIndices(2, 4)).toEqual([0, 1]);
    expect(sampleIndices(5, 0)).toEqual([]);
    const { val } = await openDatasets(readRunSpec(lora));
    const opts = { mode: 'click' as const, seed: 5, batch: 4 };
    const all = await evalPrompts(val, [0, 1, 2, 3, 4, 5], opts);
    const one = await evalPrompts(val, [5], opts);
    expect(one.get(5)).toEqual(all.get(5));
    expect([...one.keys()]).toEqual([4, 5]); // the batch's earlier images are drawn too, as eval draws them
    // a pixel centre stays a pixel centre; box edges stay edges
    expect(scalePrompt({ size: 64, prompt: { point: { x: 10, y: 0, label: 1 } } }, 128)).toEqual({ point: { x: 20.5, y: 0.5, label: 1 } });
    expect(scalePrompt({ size: 64, prompt: { box: [0, 8, 63, 15] } }, 128)).toEqual({ box: [0, 16, 127, 31] });
    const p = { size: 64, prompt: { point: { x: 3, y: 4, label: 0 as const } } };
    expect(scalePrompt(p, 64)).toBe(p.prompt);
  });
});

describe('the Predictions section', () => {
  let out: string;
  let warnings: string[];
  let report: Awaited<ReturnType<typeof writeReport>>;

  beforeAll(async () => {
    out = join(root, 'report');
    warnings = [];
    report = await writeReport([lora, adapter, noCheckpoint, notLoaded], { out, plugins: registry, gallery: { registry, samples: 3, worst: 2, warn: (l) => warnings.push(l) } });
  }, 300_000);

  it('shows the same documented images for every run, each run\'s worst images, with eval\'s Dice', () => {
    const g = report.gallery!;
    expect(g.groups).toHaveLength(1);
    const [group] = g.groups;
    expect(group!.images.map((i) => i.index)).toEqual([1, 3, 5]);
    expect(group!.runs.map((r) => r.dir)).toEqual([lora, adapter]);
    const [l, a] = group!.runs;
    // lora's clicks for both: the adapter run, evaluated with boxes, is flagged
    expect(group!.runs.map((r) => r.otherPrompts)).toEqual([false, true]);
    expect(l!.predictions.map((p) => p.index)).toEqual([1, 3, 5]);
    const perImage = scored.get(lora)!.dice;
    for (const p of l!.predictions) expect(p.dice).toBe(perImage[p.index]!.dice);
    const lowest = [...perImage].sort((x, y) => x.dice - y.dice || x.index - y.index).slice(0, 2);
    expect(l!.worst.map((w) => [w.index, w.dice])).toEqual(lowest.map((s) => [s.index, s.dice]));
    expect(a!.worst).toHaveLength(2);
    expect(l!.scored).toBe(6);
    expect(l!.checkpoint).toContain(join('checkpoints', 'best'));
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).toContain(`${a!.label} is evaluated with other prompt settings`);
  });

  it('a run without a checkpoint, and one whose plugin is not loaded, is one line and one warning each', () => {
    const g = report.gallery!;
    expect(g.skipped.map((s) => s.dir)).toEqual([noCheckpoint, notLoaded]);
    expect(g.skipped[0]!.reason).toMatch(/no checkpoint 'best'/);
    expect(g.skipped[1]!.reason).toMatch(/needs method 'dora_elsewhere' from plugin 'peftjs-dora-elsewhere' 0\.1\.0/);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(new RegExp(`^no pictures of ${noCheckpoint.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} in the report: `));
    for (const w of warnings) expect(w).not.toContain('\n');
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html.match(/<p class="skipped">/g)).toHaveLength(2);
    // the rest renders: the results table still has all four runs
    expect(html.match(/<tr class="run/g)).toHaveLength(4);
  });

  it('writes the pictures as 256 px PNGs under pictures/, owned by the report folder', async () => {
    const pics = report.files.filter((f) => f.startsWith('pictures/'));
    // 3 images and their ground truth, 3 predictions per run, 2 worst per run (their ground truth shared when it is a shown image)
    expect(pics.filter((f) => /\/image-\d+\.png$/.test(f))).toHaveLength(3);
    expect(pics.filter((f) => /-shown-\d+\.png$/.test(f))).toHaveLength(6);
    expect(pics.filter((f) => /-worst-\d+\.png$/.test(f))).toHaveLength(4);
    for (const f of pics) {
      const png = decodePng(readFileSync(join(out, f)), f);
      expect([png.width, png.height], f).toEqual([256, 256]);
    }
    const marker = JSON.parse(readFileSync(join(out, REPORT_MARKER), 'utf8')) as { files: string[] };
    expect(marker.files).toEqual(expect.arrayContaining(pics));
    // the section turned off: its pictures and their folder go, a user's file beside them stays
    writeFileSync(join(out, 'notes.txt'), 'mine');
    await writeReport([lora, adapter], { out, plugins: registry, gallery: { registry, samples: 0 } });
    expect(existsSync(join(out, 'pictures'))).toBe(false);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
    expect(readFileSync(join(out, 'index.html'), 'utf8')).not.toContain('id="predictions"');
    // and back, for the browser test below
    report = await writeReport([lora, adapter, noCheckpoint, notLoaded], { out, plugins: registry, gallery: { registry, samples: 3, worst: 2 } });
    expect(readdirSync(join(out, 'pictures', '1')).length).toBe(pics.length);
  });

  it('refuses a count that is not a whole number, before writing anything', async () => {
    const never = join(root, 'never');
    await expect(writeReport([lora], { out: never, gallery: { registry, samples: -1 } })).rejects.toThrow(/^--samples must be a whole number of images \(0 or more\), got -1$/);
    await expect(writeReport([lora], { out: never, gallery: { registry, samples: 2, worst: 1.5 } })).rejects.toThrow(/^--worst must be/);
    expect(existsSync(never)).toBe(false);
  });

  it('a hand-edited run.json whose eval settings peft train never writes is a skipped line, not a crash', async () => {
    const edited = join(root, 'runs', 'edited');
    cpSync(lora, edited, { recursive: true });
    const s = JSON.parse(readFileSync(join(edited, 'run.json'), 'utf8')) as RunSpec;
    s.options.batch = 0;
    writeFileSync(join(edited, 'run.json'), JSON.stringify(s));
    const r = await writeReport([lora, edited], { out: join(root, 'report-edited'), gallery: { registry, samples: 1, worst: 0 } });
    expect(r.gallery!.skipped.map((x) => x.reason)).toEqual([`${join(edited, 'run.json')}: options.batch must be an integer from 1 to 1024, got 0`]);
    expect(r.gallery!.groups[0]!.runs.map((x) => [x.dir, x.scored])).toEqual([[lora, 1]]);
  });

  it('a run whose checkpoint is broken is a skipped line; a group left with no run writes no pictures', async () => {
    const broken = join(root, 'runs', 'broken');
    cpSync(lora, broken, { recursive: true });
    const weights = join(broken, 'checkpoints', 'best', 'adapter_model.safetensors');
    writeFileSync(weights, readFileSync(weights).subarray(0, 100));
    const warned: string[] = [];
    const r = await writeReport([broken], { out: join(root, 'report-broken'), gallery: { registry, samples: 2, warn: (l) => warned.push(l) } });
    expect(r.gallery!.skipped).toHaveLength(1);
    expect(r.gallery!.skipped[0]!.reason).toContain('adapter_model.safetensors');
    expect(warned).toHaveLength(1);
    expect(r.gallery!.groups).toEqual([]);
    expect(r.files.filter((f) => f.startsWith('pictures/'))).toEqual([]);
    expect(readFileSync(join(root, 'report-broken', 'index.html'), 'utf8')).toContain('No run could be re-evaluated.');
  });

  it.skipIf(!haveChromium)('renders in headless Chromium: every picture loads, captions show Dice, the skipped runs show', async () => {
    const { chromium } = await import('playwright-core');
    const userDataDir = mkdtempSync(join(tmpdir(), 'peft-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('requestfailed', (req) => errors.push(`failed: ${req.url()}`));
      await page.goto(pathToFileURL(join(out, 'index.html')).href, { waitUntil: 'load' });
      const images = await page.$$eval('#predictions img', (imgs) => (imgs as HTMLImageElement[]).map((i) => ({ src: i.getAttribute('src')!, alt: i.alt, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, shown: i.getBoundingClientRect().width })));
      // 3 rows of image, ground truth and 2 predictions; 2 runs x 2 worst, each a ground truth and a prediction
      expect(images).toHaveLength(3 * 4 + 2 * 2 * 2);
      for (const im of images) {
        expect(im.ok, `${im.src} loaded`).toBe(true);
        expect(im.w).toBe(256);
        expect(im.shown).toBeGreaterThan(100);
        expect(im.alt.length, `${im.src} has alt text`).toBeGreaterThan(10);
      }
      const dice = await page.$$eval('#predictions figcaption .dice', (els) => els.map((el) => el.textContent));
      expect(dice).toHaveLength(3 * 2 + 2 * 2);
      for (const d of dice) expect(d).toMatch(/^Dice \d\.\d{3}$/);
      // the first row's predictions are captioned with the library's values
      const first = report.gallery!.groups[0]!.runs.map((r) => `Dice ${r.predictions[0]!.dice.toFixed(3)}`);
      const row = await page.$$eval('table.gallery tbody tr:first-child .dice', (els) => els.map((el) => el.textContent));
      expect(row).toEqual(first);
      const headers = await page.$$eval('table.gallery thead th', (ths) => ths.map((th) => th.textContent));
      expect(headers).toEqual(['Image and prompt', 'Ground truth', report.rows[0]!.label, report.rows[1]!.label]);
      expect(headers[2]).toMatch(/LoRA/);
      const skipped = await page.$$eval('#predictions p.skipped', (ps) => ps.map((p) => p.textContent!));
      expect(skipped).toHaveLength(2);
      expect(skipped[0]).toContain('no checkpoint');
      // the screenshot, for a person to look at (PEFT_REPORT_PICTURES_SCREENSHOT keeps it elsewhere)
      const shot = process.env.PEFT_REPORT_PICTURES_SCREENSHOT ?? join(root, 'report-pictures.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(decodePng(readFileSync(shot), shot).width).toBe(1280);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  });
});
