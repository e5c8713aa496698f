// `peft serve` end to end: two tiny runs trained by the CLI on small synthetic
// data, the server started in this process on a free loopback port over them,
// and its page driven in Debian's headless Chromium: upload, click, and the
// mask the page shows (and downloads) equals the mask `peft predict` writes
// for the same prompt (the CLI, on the same backend; later prompts through
// the library's openPredictor + predict, opened separately); a second click
// does not re-run the encoder (GET /api/stats). Then bad requests (non-image,
// 50 MB uploads, coordinates outside, 1000 requests in a burst) against a
// server over the same runs, which keeps answering; and `peft serve` itself
// as a child process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode as decodePngFile } from 'fast-png';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { decodeImage } from '../src/app/data/image-io.js';
import { binaryMask } from '../src/app/pictures/index.js';
import { MASK_THRESHOLD, openPredictor, type PromptSpec } from '../src/app/predict/index.js';
import { openServedRuns, startServer, type ServedRun, type StartedServer } from '../src/app/serve/index.js';
import { peftSpawn, peftSync } from './support/cli-runs.js';

// Debian's chromium; PEFT_CHROMIUM names another system browser binary
const CHROMIUM = process.env.PEFT_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let root: string;
let registry: Registry;
let runDirs: string[];
let runs: ServedRun[];
/** A test image of the synthetic data, as a user would upload it. */
let imageFile: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'peft-serve-test-'));
  const data = join(root, 'data');
  const env = { PEFT_CACHE: join(root, 'cache') };
  const synth = peftSync(['data', 'synth', '--out', data, '--n', '10', '--size', '64', '--seed', '3'], env);
  expect(synth.code, synth.stderr).toBe(0);
  runDirs = [];
  for (const method of ['lora', 'adapter']) {
    const r = peftSync(['train', '--backbone', 'mobile_sam', '--preset', 'tiny', '--method', method, '--image-size', '64', '--steps', '2', '--batch', '2', '--data-path', data, '--out', join(root, 'runs'), '--exp-name', method], env);
    expect(r.code, r.stderr).toBe(0);
    runDirs.push(join(root, 'runs', method));
  }
  const test = join(data, 'Test-400');
  const name = readdirSync(test).sort()[0]!;
  imageFile = join(test, name, `${name}.jpg`);
  registry = await createDefaultRegistry();
  runs = await openServedRuns(registry, runDirs);
}, 600_000);

afterAll(() => {
  for (const r of runs ?? []) r.predictor.dispose();
  if (root && !process.env.PEFT_KEEP_SERVE_TEST) rmSync(root, { recursive: true, force: true });
});

/** The backend the tests run on in this process (test/setup.ts): `peft predict` runs on the same one. */
const BACKEND = process.env.PEFT_TEST_BACKEND ?? 'cpu';

/** The class masks `peft predict --point x,y` writes for `file`, by class. */
function predictCli(runDir: string, file: string, x: number, y: number): Record<string, Uint8Array> {
  const out = mkdtempSync(join(root, 'predict-'));
  const r = peftSync(['predict', '--run', runDir, '--point', `${x},${y}`, file, '--out', out, '--force', '--backend', BACKEND]);
  expect(r.code, r.stderr).toBe(0);
  const masks: Record<string, Uint8Array> = {};
  for (const f of readdirSync(out)) {
    const m = /\.([a-z]+)\.mask\.png$/.exec(f);
    if (m) masks[m[1]!] = pngBits(readFileSync(join(out, f))).bits;
  }
  return masks;
}

/** peft predict's binary class masks for `prompt` on `file` through the library, from a predictor of its own. */
async function predictLibrary(runDir: string, file: string, prompt: PromptSpec): Promise<Uint8Array[]> {
  const predictor = await openPredictor(registry, { run: runDir });
  const embedding = predictor.embed(decodeImage(readFileSync(file), file));
  try {
    return predictor.predict(embedding, prompt).masks.map((m) => binaryMask(m.probability, MASK_THRESHOLD));
  } finally {
    embedding.dispose();
    predictor.dispose();
  }
}

const same = (a: Uint8Array, b: Uint8Array | undefined) => b !== undefined && Buffer.from(a).equals(Buffer.from(b));

const pngBits = (bytes: Uint8Array) => {
  const d = decodePngFile(bytes);
  return { width: d.width, height: d.height, bits: Uint8Array.from(d.data as Uint8Array, (v) => (v > 127 ? 1 : 0)) };
};

async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}

if (!haveChromium && process.env.CI) {
  describe('serve in Chromium', () => {
    it('needs Debian chromium in CI', () => {
      throw new Error(`${CHROMIUM} is missing: CI must run scripts/ci/install-chromium.sh before the tests`);
    });
  });
}

describe.skipIf(!haveChromium)(`peft serve's page in headless Chromium${haveChromium ? '' : ` (skipped: ${CHROMIUM} not installed)`}`, () => {
  it("upload, click: the page's mask equals peft predict's; a second click does not re-run the encoder; runs switch; test images show their ground truth", async () => {
    const server = await startServer(runs, { port: 0 });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const { chromium } = await import('playwright-core');
    const userDataDir = mkdtempSync(join(tmpdir(), 'peft-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 1000 },
      acceptDownloads: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const external: string[] = [];
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(server.url) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
        external.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        // the refused upload below is expected to log its 415
        if (m.type() === 'error' && !/status of 415/.test(m.text())) errors.push(m.text());
      });
      page.on('pageerror', (err) => errors.push(String(err)));
      await page.goto(server.url, { waitUntil: 'load' });
      await page.waitForFunction(() => /Serving 2 runs/.test(document.querySelector('#served')!.textContent ?? '')).catch(async (err) => {
        throw new Error(`${err}: served '${await page.textContent('#served')}', error '${await page.textContent('#error')}', console ${JSON.stringify(errors)}`);
      });
      expect(await page.locator('#run-switch input[type=radio]').count()).toBe(2);

      const canvas = page.locator('#canvas');
      /** Clicks the centre of pixel (x, y) of a w x h image. */
      const clickAt = async (x: number, y: number, w: number, h: number, button: 'left' | 'right' = 'left') => {
        const b = (await canvas.boundingBox())!;
        await page.mouse.click(b.x + ((x + 0.5) / w) * b.width, b.y + ((y + 0.5) / h) * b.height, { button });
      };
      const maskShown = (seq: number) => page.waitForSelector(`#canvas[data-mask-seq="${seq}"][data-state="ready"]`);
      const prompt = async (): Promise<PromptSpec> => {
        const p = JSON.parse((await canvas.getAttribute('data-prompt'))!) as PromptSpec;
        return p.box ? p : { points: p.points };
      };
      const download = async (): Promise<ReturnType<typeof pngBits>> => {
        const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
        const file = join(root, `download-${Date.now()}.png`);
        await dl.saveAs(file);
        return pngBits(readFileSync(file));
      };

      // upload the JPEG, click a pixel: the masks are the ones peft predict writes for that point
      await page.setInputFiles('#upload', imageFile);
      await page.waitForSelector('#canvas[data-state="ready"][data-image^="u"]');
      const { width, height } = decodeImage(readFileSync(imageFile), imageFile);
      const [cx, cy] = [Math.round(width * 0.55), Math.round(height * 0.45)];
      await clickAt(cx, cy, width, height);
      await maskShown(1);
      const first = await prompt();
      expect(first).toEqual({ points: [{ x: cx, y: cy, label: 1 }] });
      const cli = predictCli(runDirs[0]!, imageFile, cx, cy);
      expect(Object.keys(cli).sort()).toEqual(['cup', 'disc']);
      expect(await page.$$eval('#candidate option', (os) => os.map((o) => o.textContent!.split(' ')[0]))).toEqual(['cup', 'disc']);
      const shown = await download();
      expect([shown.width, shown.height]).toEqual([width, height]);
      expect(same(shown.bits, cli.cup), "the page's cup mask == peft predict's").toBe(true);
      expect(Number(await canvas.getAttribute('data-mask-area'))).toBe(cli.cup!.reduce((a, v) => a + v, 0));
      await page.selectOption('#candidate', '1');
      await page.waitForSelector('#canvas[data-mask-seq="2"]');
      expect(same((await download()).bits, cli.disc), "the page's disc mask == peft predict's").toBe(true);
      await page.selectOption('#candidate', '0');
      await page.waitForSelector('#canvas[data-mask-seq="3"]');
      let stats = await getJson(`${server.url}/api/stats`);
      expect(stats).toMatchObject({ encoderRuns: 1, decoderRuns: 1, cacheSize: 1 });

      // a second (negative) point: the decoder only
      await clickAt(Math.round(width / 4), Math.round(height / 4), width, height, 'right');
      await maskShown(4);
      const second = await prompt();
      expect(second.points).toEqual([first.points![0], { x: Math.round(width / 4), y: Math.round(height / 4), label: 0 }]);
      expect(same((await download()).bits, (await predictLibrary(runDirs[0]!, imageFile, second))[0])).toBe(true);
      stats = await getJson(`${server.url}/api/stats`);
      expect(stats).toMatchObject({ encoderRuns: 1, decoderRuns: 2, cacheHits: 1 });
      expect(await page.textContent('#status')).toMatch(/image embedding cached/);

      // the other run on the same prompts: its encoder runs once, its mask is its own predict's
      await page.check('#run-1');
      await maskShown(5);
      expect(await prompt()).toEqual(second);
      expect(same((await download()).bits, (await predictLibrary(runDirs[1]!, imageFile, second))[0])).toBe(true);
      expect(await getJson(`${server.url}/api/stats`)).toMatchObject({ encoderRuns: 2, decoderRuns: 3 });
      await page.check('#run-0');
      await maskShown(6);
      expect(await getJson(`${server.url}/api/stats`)).toMatchObject({ encoderRuns: 2, decoderRuns: 4 });

      // undo goes back to the first prompt; a drag is a box of the pixels it covers
      await page.click('#undo');
      await maskShown(7);
      expect(await prompt()).toEqual(first);
      const b = (await canvas.boundingBox())!;
      const at = (x: number, y: number) => [b.x + (x / width) * b.width, b.y + (y / height) * b.height] as const;
      await page.mouse.move(...at(10.5, 12.5));
      await page.mouse.down();
      await page.mouse.move(...at(30.5, 20.5), { steps: 4 });
      await page.mouse.up();
      await maskShown(8);
      const boxed = await prompt();
      expect(boxed).toEqual({ points: first.points, box: [10, 12, 30, 20] });
      expect(same((await download()).bits, (await predictLibrary(runDirs[0]!, imageFile, boxed))[0])).toBe(true);

      // a test image: its ground truth can be shown beside the mask
      await page.selectOption('#test-image', { index: 1 });
      await page.waitForSelector('#canvas[data-state="ready"][data-image^="t"]');
      await page.waitForSelector('#show-truth:not([disabled])');
      expect(await page.$$eval('#truth-channel option', (os) => os.map((o) => o.textContent))).toEqual(['cup', 'disc']);
      await page.check('#show-truth');
      const t = await getJson(`${server.url}/api/images/${await canvas.getAttribute('data-image')}/truth`);
      await clickAt(Math.round(t.width / 2), Math.round(t.height / 2), t.width, t.height);
      await maskShown(9);
      // the run's classes are the masks to choose from; the one shown is scored against its own structure
      expect(await page.$$eval('#candidate option', (os) => os.map((o) => o.textContent!.split(' ')[0]))).toEqual(['cup', 'disc']);
      expect(await page.textContent('#status')).toMatch(/: cup mask of \d+ px, .* Dice vs ground truth: cup \d\.\d{3}\.$/);
      await page.selectOption('#candidate', '1');
      await page.waitForSelector('#canvas[data-mask-seq="10"]');
      expect(await page.textContent('#status')).toMatch(/: disc mask of \d+ px, .* Dice vs ground truth: disc \d\.\d{3}\.$/);

      const shot = process.env.PEFT_SERVE_SCREENSHOT ?? join(root, 'serve-screenshot.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(readFileSync(shot).subarray(0, 8).equals(PNG_MAGIC)).toBe(true);

      // an unreadable file: one visible line, and the page keeps its image
      const bad = join(root, 'notes.png');
      writeFileSync(bad, 'these are notes, not an image');
      await page.setInputFiles('#upload', bad);
      await page.waitForSelector('#error:not([hidden])');
      expect(await page.textContent('#error')).toBe('notes.png: not a PNG, JPEG, BMP, DICOM or TIFF image (it starts with text "these ar")');
      expect(await canvas.getAttribute('data-state')).toBe('ready');

      expect(errors).toEqual([]);
      expect(external).toEqual([]);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
      await server.close();
    }
  });
});

/** One HTTP request through `agent`: status and body, or the socket error's code. */
function request(url: string, init: { method?: string; headers?: Record<string, string | number>; body?: Buffer | string; agent?: http.Agent } = {}): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers, agent: init.agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(init.body);
  });
}

/**
 * Streams `total` bytes of a PNG-looking upload, chunk by chunk, declaring its
 * length or not (chunked), and stops when the answer comes: the status, and
 * how much had been sent by then (the server must answer without reading it all).
 */
function bigUpload(url: string, total: number, declareLength: boolean): Promise<{ status: number; body: string; sentWhenAnswered: number }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
    if (declareLength) headers['content-length'] = total;
    const req = http.request(`${url}/api/images`, { method: 'POST', headers });
    const chunk = Buffer.alloc(1 << 16, 0);
    PNG_MAGIC.copy(chunk);
    let sent = 0;
    let answered = false;
    req.on('response', (res) => {
      const sentWhenAnswered = sent;
      answered = true;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body, sentWhenAnswered });
        req.destroy(); // the rest is never sent
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const pump = () => {
      while (!answered && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

describe('peft serve refuses bad requests and keeps answering', () => {
  /** Long enough for the burst to fall in one window on a slow machine. */
  const WINDOW_MS = 8000;
  let server: StartedServer;
  beforeAll(async () => {
    // the default limit (600 a minute), over a shorter window so the test can wait it out
    server = await startServer(runs, { port: 0, rateLimit: { max: 600, windowMs: WINDOW_MS } });
  });
  afterAll(async () => server?.close());

  it('non-image (415), 50 MB uploads (413, not read to the end), coordinates outside (400), a burst of 1000 (429s), then normal answers', async () => {
    const { url } = server;
    const json = { 'content-type': 'application/json' };
    const text = await request(`${url}/api/images`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'GIF89a is not among the formats' });
    expect(text).toEqual({ status: 415, body: JSON.stringify({ error: 'upload: not a PNG, JPEG, BMP, DICOM or TIFF image (it starts with text "GIF89a i")' }) });

    const fifty = 50 * 1024 * 1024;
    for (const declared of [true, false]) {
      const r = await bigUpload(url, fifty, declared);
      expect(r.status, `declared length: ${declared}`).toBe(413);
      expect(JSON.parse(r.body).error).toMatch(/^request body too large \(uploads up to 16 MiB/);
      expect(r.sentWhenAnswered, `declared length: ${declared}`).toBeLessThan(fifty);
    }

    const up = await request(`${url}/api/images`, { method: 'POST', headers: { 'content-type': 'image/jpeg', 'x-file-name': 'eye.jpg' }, body: readFileSync(imageFile) });
    expect('status' in up && up.status).toBe(200);
    const image = JSON.parse((up as { body: string }).body) as { id: string; width: number; height: number };
    const predict = (body: object) => request(`${url}/api/predict`, { method: 'POST', headers: json, body: JSON.stringify(body) });
    const outside = await predict({ image: image.id, run: 0, points: [{ x: image.width + 5, y: 1, label: 1 }] });
    expect(outside).toEqual({ status: 400, body: JSON.stringify({ error: `point ${image.width + 5},1 lies outside the ${image.width}x${image.height} image (x 0..${image.width - 1}, y 0..${image.height - 1})` }) });
    expect(await predict({ image: image.id, run: 7, points: [{ x: 1, y: 1, label: 1 }] })).toMatchObject({ status: 404 });

    // 1000 requests at once over 64 connections
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const burst = await Promise.all(Array.from({ length: 1000 }, () => request(`${url}/api/stats`, { agent })));
    agent.destroy();
    const codes = new Map<number | string, number>();
    for (const r of burst) {
      const k = 'status' in r ? r.status : r.error;
      codes.set(k, (codes.get(k) ?? 0) + 1);
    }
    expect([...codes.keys()].sort(), JSON.stringify([...codes])).toEqual([200, 429]);
    expect(codes.get(429)).toBeGreaterThan(300);
    const limited = burst.find((r) => 'status' in r && r.status === 429) as { body: string };
    expect(JSON.parse(limited.body).error).toMatch(/^too many requests: more than 600 in 8 s from this address; retry in \d+ s$/);

    // after the window: answered as before, and a good click works
    const deadline = Date.now() + WINDOW_MS + 2000;
    while ((await fetch(`${url}/api/stats`)).status === 429 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const after = await predict({ image: image.id, run: 0, points: [{ x: image.width / 2, y: image.height / 2, label: 1 }] });
    expect('status' in after && after.status, JSON.stringify(after)).toBe(200);
    expect(JSON.parse((after as { body: string }).body).masks.map((m: { label: string }) => m.label)).toEqual(['cup', 'disc']);
    expect(await getJson(`${url}/api/stats`)).toMatchObject({ runs: 2 });
  });
});

describe('peft serve, the command', () => {
  it('prints the address of a free loopback port, serves the page from the build, stops on SIGTERM; a bad --host or --run is one line', async () => {
    const { child, done } = peftSpawn(['serve', '--run', runDirs[0]!, '--port', '0', '--backend', BACKEND]);
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        const m = /^serving on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
        if (m) resolve(m[1]!);
      });
      void done.then((r) => reject(new Error(`peft serve exited (${r.code}): ${r.stderr}`)));
    });
    try {
      const info = await getJson(`${url}/api/runs`);
      expect(info.runs).toHaveLength(1);
      expect(info.runs[0]).toMatchObject({ index: 0, label: `${runDirs[0]} (best)`, description: 'MobileSAM Tiny-ViT (tiny) + LoRA', multimask: true, testSplit: 'Test-400' });
      const page = await fetch(url);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await page.text()).toContain('<canvas id="canvas"');
      expect((await fetch(`${url}/app.js`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}run 0: .*\(best\) \(MobileSAM Tiny-ViT \(tiny\) \+ LoRA\), 2 test images \(Test-400\)$/m);

    // TEST-NET-1 is no address of this machine: the warning, then one error line
    const far = peftSync(['serve', '--run', runDirs[0]!, '--host', '192.0.2.1', '--port', '0', '--backend', BACKEND]);
    expect(far.code).toBe(2);
    expect(far.stderr).toBe('peft: warning: listening on 192.0.2.1: anyone who can reach this address can use the page and the models; there is no authentication\npeft: error: cannot listen on 192.0.2.1: no such local address (--host)\n');
    const missing = peftSync(['serve', '--run', join(root, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`peft: error: ${join(root, 'nope')}: not a run directory (no run.json)\n`);
  });
});
