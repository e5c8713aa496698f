#!/usr/bin/env node
// Click latency of `peft serve`, as the page sees it: for each run, the
// server is started in this process on a free loopback port, images are
// opened, and clicks are POSTed to /api/predict over HTTP. Reports the median
// (and 90th percentile) round trip of a click on an image whose embedding is
// cached (prompt encoder + mask decoder + PNG + HTTP), the server's decoder
// time, and the image encoder's time separately (first click on each image).
//
//   npm run build && node scripts/bench/serve-latency.mjs [--clicks 20] [--images 5] [--backend B] [--run DIR ...] [--json]
//
// Without --run it trains throw-away runs of the two `tiny` presets
// (mobile_sam tiny + LoRA and sam tiny + LoRA, one step on 12 synthetic
// 128 px images: the weights do not change the time) in a temporary folder.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'bin/run.js');
const dist = (p) => pathToFileURL(join(root, 'dist/src', p)).href;

const { values: args } = parseArgs({
  options: {
    clicks: { type: 'string', default: '20' },
    images: { type: 'string', default: '5' },
    backend: { type: 'string' },
    run: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const clicks = Number(args.clicks);
const nImages = Number(args.images);
const say = (line) => process.stderr.write(`${line}\n`);

function peft(...a) {
  const r = spawnSync(process.execPath, [bin, ...a], { encoding: 'utf8', env: { ...process.env, ...(args.backend ? { PEFT_BACKEND: args.backend } : {}) } });
  if (r.status !== 0) throw new Error(`peft ${a.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

let tmp;
let runDirs = args.run ?? [];
if (runDirs.length === 0) {
  tmp = mkdtempSync(join(tmpdir(), 'peft-serve-bench-'));
  say(`training throw-away tiny runs in ${tmp} ...`);
  peft('data', 'synth', '--out', join(tmp, 'data'), '--n', '12', '--size', '128', '--seed', '5');
  for (const backbone of ['mobile_sam', 'sam']) {
    peft('train', '--backbone', backbone, '--preset', 'tiny', '--method', 'lora', '--steps', '1', '--batch', '1', '--data-path', join(tmp, 'data'), '--out', join(tmp, 'runs'), '--exp-name', backbone);
    runDirs.push(join(tmp, 'runs', backbone));
  }
}

await import('reflect-metadata');
const { initBackend } = await import(dist('app/backend.js'));
const { createDefaultRegistry } = await import(dist('builtins.js'));
const { openServedRuns, startServer } = await import(dist('app/serve/index.js'));
const { readImage, encodePng } = await import(dist('app/data/image-io.js'));
const { nativeStatus } = await import(dist('accel/native/index.js'));

const backend = await initBackend({ preferred: args.backend, quiet: true });
const registry = await createDefaultRegistry();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(0.9 * xs.length) - 1)];

/** Seeded points inside the image, so every run gets the same clicks. */
function* points(width, height, seed = 1) {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (;;) yield { x: Math.round(next() * (width - 1)), y: Math.round(next() * (height - 1)), label: 1 };
}

const results = [];
for (const dir of runDirs) {
  const [run] = await openServedRuns(registry, [dir], { warn: say });
  // no rate limit: the benchmark clicks faster than a person
  const server = await startServer([run], { port: 0, rateLimit: false, limits: { embeddings: nImages + 1 } });
  try {
    const post = async (path, body, type = 'application/json') => {
      const t0 = performance.now();
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body: type === 'application/json' ? JSON.stringify(body) : body });
      const json = await res.json();
      if (!res.ok) throw new Error(`${path}: ${json.error}`);
      return { json, ms: performance.now() - t0 };
    };
    const src = run.testImages;
    if (!src) throw new Error(`${dir}: no test images to click on`);
    const ids = [];
    for (let i = 0; i < Math.min(nImages, src.names.length); i++) {
      // uploaded as a user would (PNG bytes of the test image at its own size)
      const img = await readImage(src.path(i), 'rgb');
      ids.push({ ...(await post('/api/images', Buffer.from(encodePng(img)), 'application/octet-stream')).json });
    }
    const encoder = [];
    const first = [];
    for (const im of ids) {
      const p = points(im.width, im.height, 7).next().value;
      const r = await post('/api/predict', { image: im.id, run: 0, points: [p] });
      encoder.push(r.json.timing.encoderMs);
      first.push(r.ms);
    }
    const im = ids[0];
    const gen = points(im.width, im.height, 11);
    // two warm-up clicks (first calls of the decoder's kernels), then the measured ones
    for (let k = 0; k < 2; k++) await post('/api/predict', { image: im.id, run: 0, points: [gen.next().value] });
    const roundTrip = [];
    const decoder = [];
    for (let k = 0; k < clicks; k++) {
      const r = await post('/api/predict', { image: im.id, run: 0, points: [gen.next().value] });
      if (!r.json.timing.cached) throw new Error('a click re-ran the encoder');
      roundTrip.push(r.ms);
      decoder.push(r.json.timing.decoderMs);
    }
    const stats = await (await fetch(`${server.url}/api/stats`)).json();
    results.push({
      run: run.label,
      model: run.description,
      imageSize: run.predictor.imageSize,
      image: `${im.width}x${im.height}`,
      clicks,
      clickMedianMs: median(roundTrip),
      clickP90Ms: p90(roundTrip),
      decoderMedianMs: median(decoder),
      encoderMedianMs: median(encoder),
      firstClickMedianMs: median(first),
      encoderRuns: stats.encoderRuns,
    });
  } finally {
    await server.close();
    run.predictor.dispose();
  }
}

const native = nativeStatus();
const machine = { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', backend: `${backend.active}${native.active ? ` + native kernels (${native.threads} threads)` : ''}`, node: process.version };
if (args.json) process.stdout.write(`${JSON.stringify({ machine, results }, null, 2)}\n`);
else {
  const f = (ms) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
  console.log(`${machine.cpus} cores (${machine.cpu}), backend ${machine.backend}, Node ${machine.node}`);
  console.log(`| model | image | click: median of ${clicks} (p90) | decoder (server) | encoder: median of ${nImages} images | first click on an image |`);
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of results) console.log(`| ${r.model} | ${r.image} | ${f(r.clickMedianMs)} ms (${f(r.clickP90Ms)} ms) | ${f(r.decoderMedianMs)} ms | ${f(r.encoderMedianMs)} ms | ${f(r.firstClickMedianMs)} ms |`);
}
if (tmp && !args.keep) rmSync(tmp, { recursive: true, force: true });
