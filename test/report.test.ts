// `peft report`: the library over hand-written run directories, the CLI as a
// subprocess, and the page opened in Debian's headless Chromium.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PeftError } from '../src/core/errors.js';
import { DisplayNames, readRun, REPORT_MARKER, resultsMarkdown, toRows, writeReport, type ResultsFile } from '../src/app/report/index.js';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { emaSmooth, smoothingFor, thin } from '../src/app/report/smooth.js';
import { fmtDuration, fmtTrainable } from '../src/app/report/format.js';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));
// Debian's chromium; PEFT_CHROMIUM names another system browser binary
const CHROMIUM = process.env.PEFT_CHROMIUM ?? '/usr/bin/chromium';
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let root: string;
/** The built-in plugins: the table spells backbones and methods as they declare (`display`). */
let plugins: Registry;
let names: DisplayNames;

interface FakeRun {
  backbone: [string, string];
  method: string;
  epochs: number;
  stepsPerEpoch: number;
  /** mean-ish Dice reached at the end */
  reach: number;
  complete: boolean;
  tornTail?: boolean;
  /** loss curve shape and summary numbers that differ between runs */
  lossScale?: number;
  phase?: number;
  trainable?: number;
  peakRss?: number;
  seconds?: number;
}

/** Writes run.json, log.jsonl and (if complete) summary.json as the trainer does. */
function makeRun(dir: string, f: FakeRun): void {
  mkdirSync(dir, { recursive: true });
  const t0 = Date.parse('2025-01-01T10:00:00Z');
  const run = {
    version: 1,
    createdAt: new Date(t0).toISOString(),
    backbone: { id: f.backbone[0], preset: f.backbone[1] },
    method: { id: f.method, config: { r: 4 } },
    imageSize: 128,
    outSize: 32,
    dataset: { kind: 'refuge', path: '/data/refuge', channels: ['cup', 'disc'] },
    options: { batch: 2, lr: 1e-4, epochs: f.epochs, steps: null, valEvery: 1, seed: 0, loss: 'bce', prompt: 'click' },
    trainDecoder: true,
    command: `peft train --backbone ${f.backbone[0]} --preset ${f.backbone[1]} --method ${f.method} --epochs ${f.epochs}`,
  };
  writeFileSync(join(dir, 'run.json'), JSON.stringify(run, null, 2));
  const lines: string[] = [JSON.stringify({ type: 'info', step: 0, message: 'start', time: new Date(t0).toISOString() })];
  let step = 0;
  let t = t0;
  const vals: { dice: Record<string, number>; iou: Record<string, number> }[] = [];
  for (let epoch = 0; epoch < f.epochs; epoch++) {
    for (let i = 0; i < f.stepsPerEpoch; i++) {
      step++;
      t += 800;
      const loss = (f.lossScale ?? 1) * 0.7 * Math.exp(-step / 15) + 0.1 + 0.05 * Math.sin(step * 1.7 + (f.phase ?? 0));
      lines.push(JSON.stringify({ type: 'step', step, epoch, loss, lr: 1e-4, ms: 800, time: new Date(t).toISOString() }));
    }
    const k = (epoch + 1) / f.epochs;
    const dice = { cup: f.reach * k - 0.1, disc: f.reach * k + 0.1 };
    const iou = { cup: dice.cup * 0.8, disc: dice.disc * 0.85 };
    vals.push({ dice, iou });
    t += 2000;
    lines.push(JSON.stringify({ type: 'val', step, epoch: epoch + 1, dice, iou, loss: 0.3, time: new Date(t).toISOString() }));
  }
  let text = `${lines.join('\n')}\n`;
  if (f.tornTail) text += '{"type":"step","step":999,"epoch":9,"lo';
  writeFileSync(join(dir, 'log.jsonl'), text);
  if (f.complete) {
    const last = vals.at(-1)!;
    writeFileSync(
      join(dir, 'summary.json'),
      JSON.stringify({
        steps: step,
        epochs: f.epochs,
        seconds: f.seconds ?? 410.2,
        bestDice: (last.dice.cup + last.dice.disc) / 2,
        bestStep: step,
        final: { dice: last.dice, iou: last.iou, dice05: last.dice, iou05: last.iou },
        peakRss: f.peakRss ?? 812345678,
        peakTensorBytes: 123456789,
        methodParameters: 12345,
        trainableParameters: f.trainable ?? 45678,
        totalParameters: 9876543,
        backend: 'wasm',
      }),
    );
  }
}

let runs: string[];

beforeAll(async () => {
  plugins = await createDefaultRegistry();
  names = new DisplayNames(plugins);
  root = mkdtempSync(join(tmpdir(), 'peft-report-test-'));
  runs = [join(root, 'lora'), join(root, 'adapter'), join(root, 'adalora')];
  makeRun(runs[0]!, { backbone: ['mobile_sam', 'tiny'], method: 'lora', epochs: 3, stepsPerEpoch: 10, reach: 0.72, complete: true });
  makeRun(runs[1]!, { backbone: ['efficient_sam', 'vit_s'], method: 'adapter', epochs: 3, stepsPerEpoch: 10, reach: 0.8, complete: true, lossScale: 1.3, phase: 2, trainable: 161234, peakRss: 1_512_345_678, seconds: 1234.5 });
  makeRun(runs[2]!, { backbone: ['mobile_sam', 'tiny'], method: 'adalora', epochs: 2, stepsPerEpoch: 10, reach: 0.6, complete: false, tornTail: true, lossScale: 0.8, phase: 4 });
});

afterAll(() => {
  if (root && !process.env.PEFT_KEEP_REPORT_TEST) rmSync(root, { recursive: true, force: true });
});

describe('report library', () => {
  it('reads a run; a torn last log line is ignored', () => {
    const r = readRun(runs[2]!);
    expect(r.summary).toBeUndefined();
    expect(r.steps).toHaveLength(20);
    expect(r.vals).toHaveLength(2);
    expect(r.steps.at(-1)!.step).toBe(20);
  });

  it('table rows: the seed\'s columns from summary.json, incomplete runs from the log', () => {
    const rows = toRows(runs.map(readRun), names);
    const [lora, adapter, adalora] = rows;
    expect(lora).toMatchObject({ baseline: 'MobileSAM', encoder: 'Tiny-ViT (tiny)', backbone: 'mobile_sam/tiny', mode: 'LoRA', mod: 'sam_lora', dataset: 'REFUGE', status: 'complete', metricsFrom: 'summary' });
    expect(lora!.dice).toBeCloseTo(0.72, 10);
    expect(lora!.diceByClass.cup).toBeCloseTo(0.62, 10);
    expect(lora!.miou).toBeCloseTo((0.62 * 0.8 + 0.82 * 0.85) / 2, 10);
    expect(lora!.memoryMB).toBeCloseTo(812345678 / 2 ** 20, 6);
    expect(lora).toMatchObject({ trainableParameters: 45678, totalParameters: 9876543, seconds: 410.2, steps: 30, epochs: 3, backend: 'wasm' });
    expect(adapter).toMatchObject({ baseline: 'EfficientSAM', encoder: 'ViT-Small', mode: 'Adapter', mod: 'sam_adpt', trainableParameters: 161234, seconds: 1234.5 });
    expect(adapter!.dice).toBeCloseTo(0.8, 10);
    expect(adalora).toMatchObject({ mode: 'AdaLoRA', status: 'incomplete', metricsFrom: 'log', memoryMB: null, trainableParameters: null, steps: 20, epochs: 2 });
    expect(adalora!.dice).toBeCloseTo(0.6, 10);
    // from createdAt to the last record: 20 steps of 0.8 s and 2 validations of 2 s
    expect(adalora!.seconds).toBeCloseTo(20, 6);
    expect(new Set(rows.map((r) => r.label)).size).toBe(3);
    expect(fmtTrainable(lora!)).toBe('45.7K (0.46%)');
    expect(fmtDuration(410.2)).toBe('6 m 50 s');
  });

  it('names come from the plugins that registered the ids; an id no plugin registers shows as it is', () => {
    const records = runs.map(readRun);
    const bare = toRows(records);
    expect(bare[0]).toMatchObject({ baseline: 'mobile_sam', encoder: 'mobile_sam tiny', mode: 'lora', mod: 'lora' });
    // a plugin that declares names for its own ids only
    const partial = new DisplayNames({
      backbones: () => [{ id: 'efficient_sam', display: { family: 'ESAM', encoders: { '*': 'Any-ViT' } } }],
      methods: () => [{ id: 'adapter', display: { name: 'Adapt' } }, { id: 'lora' }],
    });
    const [lora, adapter] = toRows(records, partial);
    expect(adapter).toMatchObject({ baseline: 'ESAM', encoder: 'Any-ViT (vit_s)', mode: 'Adapt', mod: 'adapter' });
    expect(lora).toMatchObject({ baseline: 'mobile_sam', mode: 'lora', mod: 'lora' });
    expect(names.encoder('sam', 'vit_l')).toBe('ViT-L');
    expect(names.encoder('sam', null)).toBe('ViT');
  });

  it('markdown table reproduces the seed\'s layout', () => {
    const md = resultsMarkdown(toRows(runs.map(readRun), names));
    expect(md).toContain('#### REFUGE');
    expect(md).toContain('| Baseline | Backbone | mode | DICE | mIoU | Memory | Trainable params | Time |');
    expect(md).toContain('| MobileSAM | Tiny-ViT (tiny) | LoRA | 0.7200 | 0.5965 | 775 MB | 45.7K (0.46%) | 6 m 50 s |');
    expect(md).toMatch(/\| MobileSAM \| Tiny-ViT \(tiny\) \| AdaLoRA \(incomplete\) \| 0\.6000 \|.*\| — \| — \| 20\.0 s \|/);
  });

  it('smoothing: debiased EMA keeps a constant, thin keeps the last point', () => {
    expect(emaSmooth([2, 2, 2], 0.9)).toEqual([2, 2, 2].map(() => expect.closeTo(2, 12)));
    expect(emaSmooth([1, 3], 0)).toEqual([1, 3]);
    expect(smoothingFor(10)).toBe(0);
    expect(smoothingFor(2000)).toBeGreaterThan(0.9);
    const t = thin(Array.from({ length: 100 }, (_, i) => i), 10);
    expect(t).toHaveLength(10);
    expect(t.at(-1)).toBe(99);
  });

  it('writes the page, PNG and SVG charts, results.json and results.md', async () => {
    const out = join(root, 'report-lib');
    const r = await writeReport(runs, { out, now: new Date('2025-02-03T04:05:06Z'), plugins });
    for (const f of ['index.html', 'loss.png', 'dice.png', 'loss.svg', 'dice.svg', 'results.json', 'results.md', REPORT_MARKER]) expect(existsSync(join(out, f)), f).toBe(true);
    for (const f of ['loss.png', 'dice.png']) expect(readFileSync(join(out, f)).subarray(0, 8).equals(PNG_MAGIC), f).toBe(true);
    expect(readFileSync(join(out, 'loss.svg'), 'utf8')).toMatch(/^<svg/);
    expect(r.files.filter((f) => f.startsWith('runs/'))).toHaveLength(6);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ResultsFile;
    expect(json.generatedAt).toBe('2025-02-03T04:05:06.000Z');
    expect(json.runs.map((x) => x.mode)).toEqual(['LoRA', 'Adapter', 'AdaLoRA']);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//); // self-contained
    expect(html).toContain('<img src="loss.png"');
    // the SVG's legend names every run, the incomplete one marked
    const svg = readFileSync(join(out, 'dice.svg'), 'utf8');
    expect(svg).toContain('MobileSAM AdaLoRA (incomplete)');
  });

  it('user errors name the file', async () => {
    const bad = join(root, 'bad');
    mkdirSync(bad, { recursive: true });
    expect(() => readRun(bad)).toThrow(PeftError);
    expect(() => readRun(bad)).toThrow(`${join(bad, 'run.json')}: not found`);
    writeFileSync(join(bad, 'run.json'), '{"backbone": ');
    expect(() => readRun(bad)).toThrow(new RegExp(`^${join(bad, 'run.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON`));
    writeFileSync(join(bad, 'run.json'), '{"backbone": {"id": "sam"}}');
    expect(() => readRun(bad)).toThrow(/run\.json: method: /);
    writeFileSync(join(bad, 'run.json'), '{"backbone": {"id": "sam"}, "method": {"id": "lora"}}');
    writeFileSync(join(bad, 'summary.json'), '{"steps": 3, "fin');
    expect(() => readRun(bad)).toThrow(/summary\.json: not valid JSON/);
    await expect(writeReport([runs[0]!, join(root, 'nope')], { out: join(root, 'never') })).rejects.toThrow(/nope: no such directory/);
    expect(existsSync(join(root, 'never'))).toBe(false);
    // a folder that cannot be created: one line naming it, at once (Node's recursive mkdir loops forever under /proc)
    if (existsSync('/proc/self')) await expect(writeReport([runs[0]!], { out: '/proc/peftjs-x/rep' })).rejects.toThrow(/^\/proc\/peftjs-x\/rep: cannot create the report folder \(ENOENT\)$/);
  });

  it('never overwrites a directory the user owns; rewrites its own report and drops its stale files', async () => {
    const mine = join(root, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'notes.txt'), 'precious');
    await expect(writeReport([runs[0]!], { out: mine })).rejects.toThrow(/holds no previous report.*--force/);
    expect(existsSync(join(mine, 'index.html'))).toBe(false);
    await writeReport([runs[0]!], { out: mine, force: true });
    expect(readFileSync(join(mine, 'notes.txt'), 'utf8')).toBe('precious');
    expect(existsSync(join(mine, 'index.html'))).toBe(true);

    const out = join(root, 'again');
    await writeReport(runs, { out, plugins });
    expect(existsSync(join(out, 'runs', 'efficientsam-adapter_loss.svg'))).toBe(true);
    await writeReport([runs[0]!], { out, plugins }); // a previous report: rewritten without --force
    expect(existsSync(join(out, 'runs', 'efficientsam-adapter_loss.svg'))).toBe(false);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ResultsFile;
    expect(json.runs).toHaveLength(1);
  });
});

describe('peft report CLI', () => {
  const peft = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('writes the report and prints the table; --samples 0: no pictures, nothing re-evaluated', () => {
    const out = join(root, 'report-cli');
    const r = peft('report', ...runs, '--out', out, '--samples', '0');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Baseline\s+Backbone\s+mode\s+DICE\s+mIoU\s+Memory/m);
    expect(r.stdout).toMatch(/MobileSAM\s+Tiny-ViT \(tiny\)\s+LoRA\s+0\.7200/);
    expect(r.stdout).toContain(join(out, 'index.html'));
    expect(r.stdout).not.toContain('predictions:');
    expect(existsSync(join(out, 'dice.png'))).toBe(true);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).not.toContain('id="predictions"');
  });

  it('runs it cannot re-evaluate for the pictures (here: no checkpoint) are one warning and one line in the page each; the rest renders', () => {
    const out = join(root, 'report-cli-pictures');
    const r = peft('report', ...runs, '--out', out);
    expect(r.code).toBe(0);
    const warnings = r.stderr.trim().split('\n');
    expect(warnings).toEqual(runs.map((d) => `peft: warning: no pictures of ${d} in the report: ${d}: no checkpoint 'best' (expected checkpoints/best or checkpoints/last)`));
    expect(r.stdout).toMatch(/^predictions: 0 of 3 runs re-evaluated in \d+\.\d s$/m);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html.match(/<p class="skipped">/g)).toHaveLength(3);
    expect(html).toContain('No run could be re-evaluated.');
    expect(html.match(/<tr class="run/g)).toHaveLength(3);
    expect(existsSync(join(out, 'pictures'))).toBe(false);
  });

  it('user errors: one line, exit 2', () => {
    const mine = join(root, 'cli-mine');
    mkdirSync(mine, { recursive: true });
    writeFileSync(join(mine, 'keep.txt'), 'x');
    for (const args of [['report'], ['report', root], ['report', runs[0]!, '--out', mine], ['report', join(root, 'missing')], ['report', runs[0]!, '--samples=-2', '--out', join(root, 'cli-never')]]) {
      const r = peft(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^peft: error: /);
    }
    expect(peft('report', root).stderr).toContain(`${join(root, 'run.json')}: not found`);
    expect(peft('report', runs[0]!, '--samples=-2', '--out', join(root, 'cli-never')).stderr).toBe('peft: error: --samples must be an integer >= 0, got -2\n');
    expect(existsSync(join(root, 'cli-never'))).toBe(false);
  });
});

// Debian's chromium, driven by playwright-core; never a downloaded browser.
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) {
  describe('report in Chromium', () => {
    it('needs Debian chromium in CI', () => {
      throw new Error(`${CHROMIUM} is missing: CI must run scripts/ci/install-chromium.sh before the tests`);
    });
  });
}

describe.skipIf(!haveChromium)(`report in headless Chromium${haveChromium ? '' : ` (skipped: ${CHROMIUM} not installed; apt-get install chromium, or scripts/ci/install-chromium.sh)`}`, () => {
  it('renders: the table has every run, the images load, no console errors, no network', async () => {
    const { chromium } = await import('playwright-core');
    const out = join(root, 'report-browser');
    await writeReport(runs, { out, plugins });
    const userDataDir = mkdtempSync(join(tmpdir(), 'peft-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const external: string[] = [];
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        external.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (err) => errors.push(String(err)));
      page.on('requestfailed', (req) => errors.push(`failed: ${req.url()}`));
      await page.goto(pathToFileURL(join(out, 'index.html')).href, { waitUntil: 'load' });

      const rows = await page.$$eval('table.results tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent!.trim())));
      expect(rows).toHaveLength(3);
      expect(rows.map((r) => r.slice(0, 3))).toEqual([
        ['MobileSAM', 'Tiny-ViT (tiny)', 'LoRA'],
        ['EfficientSAM', 'ViT-Small', 'Adapter'],
        ['MobileSAM', 'Tiny-ViT (tiny)', 'AdaLoRA incomplete'],
      ]);
      expect(rows[0]![3]).toBe('0.7200');
      const headers = await page.$$eval('table.results thead th', (ths) => ths.map((th) => th.textContent));
      expect(headers.slice(0, 6)).toEqual(['Baseline', 'Backbone', 'mode', 'DICE', 'mIoU', 'Memory']);

      const images = await page.$$eval('img', (imgs) => imgs.map((i) => ({ src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth })));
      expect(images.length).toBe(2 + 2 * 3);
      for (const im of images) expect(im.ok, `${im.src} loaded`).toBe(true);
      expect(images.find((i) => i.src === 'loss.png')!.w).toBeGreaterThan(600);

      const shot = process.env.PEFT_REPORT_SCREENSHOT ?? join(root, 'screenshot.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(readFileSync(shot).subarray(0, 8).equals(PNG_MAGIC)).toBe(true);
      expect(errors).toEqual([]);
      expect(external).toEqual([]);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  });
});
