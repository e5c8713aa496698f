// The serve API over a fake Predictor (a disk around the first point), through
// fastify's inject: validation and status codes, the embedding cache and its
// counters, test images with ground truth, the host check and the rate limit.
// The real model in a real browser is test/serve.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decode as decodePngFile } from 'fast-png';
import type { FastifyInstance } from 'fastify';
import { encodePng, type Image8 } from '../data/image-io.js';
import type { ImageEmbedding, Prediction, Predictor, PromptSpec } from '../predict/types.js';
import { createServeApp, type ServeAppOptions, type ServedRun } from './server.js';
import type { TestImageSource } from './test-images.js';
import { Lru } from './lru.js';

function picture(width: number, height: number, seed = 0): Image8 {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101) % 256;
  return { width, height, channels: 3, data };
}

const png = (img: Image8) => Buffer.from(encodePng(img));

interface FakeEmbedding extends ImageEmbedding {
  disposed: boolean;
}

/** Masks are disks around the first point (radius 3, 6, 9 px with multimask), or the box. */
function fakePredictor(label = 'fake'): Predictor & { embedded: FakeEmbedding[]; prompts: PromptSpec[] } {
  const embedded: FakeEmbedding[] = [];
  const prompts: PromptSpec[] = [];
  return {
    label,
    imageSize: 64,
    embedded,
    prompts,
    embed(image) {
      const e: FakeEmbedding = { width: image.width, height: image.height, ms: 5, disposed: false, dispose: () => (e.disposed = true) };
      embedded.push(e);
      return e;
    },
    predict(embedding, prompt, options): Prediction {
      const e = embedding as FakeEmbedding;
      if (e.disposed) throw new Error('predict on a disposed embedding');
      prompts.push(prompt);
      const { width, height } = e;
      const radii = options?.multimask ? [3, 6, 9] : [3];
      const masks = radii.map((r, k) => {
        const probability = new Float32Array(width * height);
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) {
            let inside: boolean;
            if (prompt.points?.length) inside = Math.hypot(x - prompt.points[0]!.x, y - prompt.points[0]!.y) <= r;
            else {
              const [x0, y0, x1, y1] = prompt.box!;
              inside = x >= x0 && x <= x1 && y >= y0 && y <= y1;
            }
            probability[y * width + x] = inside ? 0.9 : 0.1;
          }
        }
        return { probability, score: 0.9 - k * 0.1, ...(options?.multimask ? {} : { label: 'disc' }) };
      });
      return { width, height, masks, ms: 1 };
    },
    dispose() {},
  };
}

function fakeTestImages(): TestImageSource {
  const img = picture(20, 10, 3);
  const truth = new Uint8Array(200);
  truth.fill(1, 0, 50);
  return {
    split: 'Test-400',
    names: ['a', 'b'],
    path: (i) => `/data/Test-400/${'ab'[i]}/${'ab'[i]}.jpg`,
    load: async (i) => ({ name: 'ab'[i]!, path: `/x/${i}`, image: img, truth: [{ name: 'disc', mask: truth }] }),
  };
}

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(runs: ServedRun[], options: ServeAppOptions = {}) {
  const made = await createServeApp(runs, { rateLimit: false, log: () => {}, ...options });
  app = made.app;
  return made;
}

const run = (predictor: Predictor, extra: Partial<ServedRun> = {}): ServedRun => ({ label: predictor.label, predictor, multimask: true, ...extra });

async function upload(a: FastifyInstance, body: Buffer | string, type = 'application/octet-stream') {
  return a.inject({ method: 'POST', url: '/api/images', headers: { 'content-type': type, 'x-file-name': 'eye%20one.png' }, payload: body });
}

const predict = (a: FastifyInstance, body: unknown) => a.inject({ method: 'POST', url: '/api/predict', payload: body as object });

/** A base64 PNG → 0/1 per pixel. */
function bits(b64: string): { width: number; height: number; bits: number[] } {
  const d = decodePngFile(Buffer.from(b64, 'base64'));
  return { width: d.width, height: d.height, bits: Array.from(d.data as Uint8Array, (v) => (v > 127 ? 1 : 0)) };
}

describe('serve: the page and the API', () => {
  it('serves the page with a strict content security policy, and the run list', async () => {
    const { app: a } = await serve([run(fakePredictor('runs/a (best)'), { description: 'MobileSAM tiny + LoRA' })]);
    const page = await a.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('<script type="module" src="/app.js">');
    const js = await a.inject({ url: '/app.js' });
    expect(js.headers['content-type']).toMatch(/text\/javascript/);
    expect(js.body).toContain('/api/predict');
    const runs = (await a.inject({ url: '/api/runs' })).json();
    expect(runs.runs).toEqual([{ index: 0, label: 'runs/a (best)', description: 'MobileSAM tiny + LoRA', imageSize: 64, multimask: true, testSplit: null }]);
    const missing = await a.inject({ url: '/nope' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error).toMatch(/no such page/);
  });

  it("the page's script parses (node --check)", () => {
    const file = fileURLToPath(new URL('./page/app.js', import.meta.url));
    const r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('an upload returns an id and the size; the same bytes give the same id; the image comes back as PNG', async () => {
    const { app: a } = await serve([run(fakePredictor())]);
    const img = picture(30, 20);
    const r = await upload(a, png(img));
    expect(r.statusCode, r.body).toBe(200);
    const info = r.json();
    expect(info).toMatchObject({ name: 'eye one.png', width: 30, height: 20, truth: [] });
    expect(info.id).toMatch(/^u[0-9a-f]{16}$/);
    expect((await upload(a, png(img))).json().id).toBe(info.id);
    const back = await a.inject({ url: `/api/images/${info.id}/image.png` });
    expect(back.headers['content-type']).toBe('image/png');
    expect(Buffer.from(decodePngFile(back.rawPayload).data as Uint8Array)).toEqual(Buffer.from(img.data));
  });

  it('refuses a non-image (415), a corrupt image (400), a too large image (413) and body (413), another content type (415)', async () => {
    const { app: a } = await serve([run(fakePredictor())], { limits: { uploadBytes: 4000, imagePixels: 40 * 40 } });
    const text = await upload(a, 'hello, this is not an image');
    expect(text.statusCode).toBe(415);
    expect(text.json().error).toBe('eye one.png: not a PNG, JPEG, BMP, DICOM or TIFF image (it starts with text "hello, t")');
    const truncated = await upload(a, png(picture(30, 20)).subarray(0, 40));
    expect(truncated.statusCode).toBe(400);
    expect(truncated.json().error).toMatch(/^eye one\.png: /);
    const big = await upload(a, png({ width: 50, height: 50, channels: 1, data: new Uint8Array(2500) }));
    expect(big.statusCode).toBe(413);
    expect(big.json().error).toMatch(/50x50 pixels is too large to serve \(limit 1600 pixels/);
    const huge = await upload(a, Buffer.alloc(5000, 7));
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error).toBe('request body too large (uploads up to 3.9 KiB, other requests up to 64 KiB)');
    const form = await upload(a, '--x\r\n', 'multipart/form-data; boundary=x');
    expect(form.statusCode).toBe(415);
    expect(form.json().error).toMatch(/unsupported Content-Type/);
    const json = await a.inject({ method: 'POST', url: '/api/images', payload: { image: 'x' } });
    expect(json.statusCode).toBe(415);
    // and the server still answers
    expect((await a.inject({ url: '/api/stats' })).statusCode).toBe(200);
  });

  it('predict: masks at the image size, the encoder once per (image, run), the decoder per prompt', async () => {
    const p = fakePredictor();
    const { app: a, stats } = await serve([run(p)]);
    const id = (await upload(a, png(picture(40, 30)))).json().id;
    const first = await predict(a, { image: id, run: 0, points: [{ x: 10, y: 12, label: 1 }] });
    expect(first.statusCode, first.body).toBe(200);
    const r = first.json();
    expect(r).toMatchObject({ run: 0, image: id, width: 40, height: 30, timing: { cached: false, encoderMs: 5, decoderMs: 1 } });
    expect(r.masks).toHaveLength(1);
    const m = bits(r.masks[0].png);
    expect([m.width, m.height]).toEqual([40, 30]);
    const expected = Array.from({ length: 1200 }, (_, i) => (Math.hypot((i % 40) - 10, Math.floor(i / 40) - 12) <= 3 ? 1 : 0));
    expect(m.bits).toEqual(expected);
    expect(r.masks[0].area).toBe(expected.reduce((s: number, v) => s + v, 0));
    expect(r.masks[0].score).toBeCloseTo(0.9, 6);
    expect(r.masks[0].label).toBe('disc');
    expect(r.masks[0].colour).toEqual([255, 214, 0]); // class 0's colour in peft predict's overlays
    const second = (await predict(a, { image: id, run: 0, points: [{ x: 10, y: 12, label: 1 }, { x: 30, y: 20, label: 0 }], multimask: true })).json();
    expect(second.timing).toMatchObject({ cached: true, encoderMs: 0 });
    expect(second.masks.map((x: { score: number; label: string | null }) => [x.score.toFixed(1), x.label])).toEqual([['0.9', null], ['0.8', null], ['0.7', null]]);
    expect(p.embedded).toHaveLength(1);
    expect(p.prompts[1]).toEqual({ points: [{ x: 10, y: 12, label: 1 }, { x: 30, y: 20, label: 0 }] });
    expect(stats()).toMatchObject({ encoderRuns: 1, decoderRuns: 2, cacheHits: 1, cacheSize: 1, images: 1 });
    expect((await a.inject({ url: '/api/stats' })).json()).toMatchObject({ encoderRuns: 1, decoderRuns: 2, cacheSize: 1, cacheCapacity: 8 });
    // a box alone
    const boxed = (await predict(a, { image: id, run: 0, box: [5, 5, 9, 7] })).json();
    expect(boxed.masks[0].area).toBe(5 * 3);
  });

  it('refuses bad prompts with 400 or 404 naming the culprit, and keeps serving', async () => {
    const { app: a } = await serve([run(fakePredictor()), run(fakePredictor('one-mask'), { multimask: false })]);
    const id = (await upload(a, png(picture(40, 30)))).json().id;
    const cases: [unknown, number, RegExp][] = [
      [{ image: id, run: 0, points: [{ x: 40, y: 3, label: 1 }] }, 400, /^point 40,3 lies outside the 40x30 image \(x 0\.\.39, y 0\.\.29\)$/],
      [{ image: id, run: 0, points: [{ x: 4, y: -1, label: 1 }] }, 400, /outside/],
      [{ image: id, run: 0, box: [0, 0, 50, 10] }, 400, /^box 0,0,50,10 reaches outside the 40x30 image/],
      [{ image: id, run: 0, box: [20, 0, 10, 10] }, 400, /x0 <= x1/],
      [{ image: id, run: 0, points: [] }, 400, /at least one point or a box/],
      [{ image: id, run: 2, points: [{ x: 1, y: 1, label: 1 }] }, 404, /no run 2: serving 2 runs \(0\.\.1\)/],
      [{ image: 'u0123456789abcdef', run: 0, points: [{ x: 1, y: 1, label: 1 }] }, 404, /no image 'u0123456789abcdef'/],
      [{ image: '../../etc/passwd', run: 0, points: [{ x: 1, y: 1, label: 1 }] }, 400, /invalid request: body\/image must match pattern/],
      [{ image: id, run: 0, points: [{ x: '1', y: 1, label: 1 }] }, 400, /body\/points\/0\/x must be number/],
      [{ image: id, run: 0, points: [{ x: 1, y: 1, label: 2 }] }, 400, /body\/points\/0\/label must be equal to one of the allowed values/],
      [{ image: id, run: 0, points: [{ x: 1, y: 1, label: 1 }], extra: 1 }, 400, /must NOT have additional properties/],
      [{ image: id, run: 1, points: [{ x: 1, y: 1, label: 1 }], multimask: true }, 400, /one mask per prompt/],
      [{ image: id, run: 0, points: Array.from({ length: 65 }, () => ({ x: 1, y: 1, label: 1 })) }, 400, /must NOT have more than 64 items/],
    ];
    for (const [body, status, message] of cases) {
      const r = await predict(a, body);
      expect(r.statusCode, JSON.stringify(body)).toBe(status);
      expect(r.json().error, JSON.stringify(body)).toMatch(message);
    }
    const notJson = await a.inject({ method: 'POST', url: '/api/predict', headers: { 'content-type': 'application/json' }, payload: '{"image":' });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json().error).toMatch(/invalid JSON body/);
    const bigJson = await a.inject({ method: 'POST', url: '/api/predict', headers: { 'content-type': 'application/json' }, payload: `{"pad":"${'x'.repeat(70_000)}"}` });
    expect(bigJson.statusCode).toBe(413);
    expect((await predict(a, { image: id, run: 0, points: [{ x: 39, y: 29, label: 1 }] })).statusCode).toBe(200);
  });

  it('the embedding cache is bounded: the least recently used embedding is disposed, and comes back through the encoder', async () => {
    const p = fakePredictor();
    const { app: a, stats } = await serve([run(p)], { limits: { embeddings: 2 } });
    const ids: string[] = [];
    for (let k = 0; k < 3; k++) ids.push((await upload(a, png(picture(16, 16, k)))).json().id);
    const click = (id: string) => predict(a, { image: id, run: 0, points: [{ x: 2, y: 2, label: 1 }] });
    await click(ids[0]!);
    await click(ids[1]!);
    await click(ids[0]!); // ids[0] is now the most recently used
    await click(ids[2]!); // evicts ids[1]
    expect(p.embedded.map((e) => e.disposed)).toEqual([false, true, false]);
    expect(stats()).toMatchObject({ encoderRuns: 3, cacheSize: 2 });
    await click(ids[1]!);
    expect(stats()).toMatchObject({ encoderRuns: 4, cacheSize: 2 });
    expect(p.embedded[0]!.disposed).toBe(true);
    await a.close();
    expect(p.embedded.every((e) => e.disposed)).toBe(true);
  });

  it('an image dropped from the held images takes its embeddings with it; asking for it again is a 404', async () => {
    const p = fakePredictor();
    const { app: a } = await serve([run(p)], { limits: { images: 1 } });
    const first = (await upload(a, png(picture(16, 16, 1)))).json().id;
    await predict(a, { image: first, run: 0, points: [{ x: 2, y: 2, label: 1 }] });
    await upload(a, png(picture(16, 16, 2)));
    expect(p.embedded[0]!.disposed).toBe(true);
    const gone = await predict(a, { image: first, run: 0, points: [{ x: 2, y: 2, label: 1 }] });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error).toMatch(/open it again/);
  });

  it("a run's test images: listed, opened by index, with their ground truth; shared ids across runs", async () => {
    const { app: a } = await serve([run(fakePredictor(), { testImages: fakeTestImages() }), run(fakePredictor('b'), { testImages: fakeTestImages() }), run(fakePredictor('c'))]);
    expect((await a.inject({ url: '/api/runs' })).json().runs.map((r: { testSplit: string | null }) => r.testSplit)).toEqual(['Test-400', 'Test-400', null]);
    expect((await a.inject({ url: '/api/runs/0/test-images' })).json()).toEqual({ split: 'Test-400', images: [{ index: 0, name: 'a' }, { index: 1, name: 'b' }] });
    expect((await a.inject({ url: '/api/runs/2/test-images' })).json()).toEqual({ split: null, images: [] });
    expect((await a.inject({ url: '/api/runs/3/test-images' })).statusCode).toBe(404);
    expect((await a.inject({ url: '/api/runs/x/test-images' })).statusCode).toBe(400);
    const opened = (await a.inject({ method: 'POST', url: '/api/test-images', payload: { run: 0, index: 1 } })).json();
    expect(opened).toMatchObject({ name: 'b', width: 20, height: 10, truth: ['disc'] });
    expect(opened.id).toMatch(/^t[0-9a-f]{16}$/);
    expect((await a.inject({ method: 'POST', url: '/api/test-images', payload: { run: 1, index: 1 } })).json().id).toBe(opened.id);
    expect((await a.inject({ method: 'POST', url: '/api/test-images', payload: { run: 0, index: 2 } })).statusCode).toBe(404);
    expect((await a.inject({ method: 'POST', url: '/api/test-images', payload: { run: 2, index: 0 } })).json().error).toMatch(/has no test images/);
    const truth = (await a.inject({ url: `/api/images/${opened.id}/truth` })).json();
    expect(truth.masks).toHaveLength(1);
    expect(truth.masks[0]).toMatchObject({ name: 'disc', area: 50 });
    expect(bits(truth.masks[0].png).bits.slice(45, 55)).toEqual([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
  });

  it('answers only to loopback host names (no DNS rebinding), unless told otherwise', async () => {
    const { app: a } = await serve([run(fakePredictor())]);
    expect((await a.inject({ url: '/api/stats', headers: { host: '127.0.0.1:8808' } })).statusCode).toBe(200);
    expect((await a.inject({ url: '/api/stats', headers: { host: '[::1]:8808' } })).statusCode).toBe(200);
    const evil = await a.inject({ url: '/api/stats', headers: { host: 'attacker.example:8808' } });
    expect(evil.statusCode).toBe(403);
    expect(evil.json().error).toMatch(/not to host 'attacker\.example'/);
    await a.close();
    const { app: open } = await serve([run(fakePredictor())], { allowedHosts: [] });
    expect((await open.inject({ url: '/api/stats', headers: { host: 'anything.example' } })).statusCode).toBe(200);
  });

  it('rate limit: past the limit a client gets 429 with a JSON error, and is answered again after the window', async () => {
    const { app: a } = await serve([run(fakePredictor())], { rateLimit: { max: 5, windowMs: 300 } });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await a.inject({ url: '/api/stats' })).statusCode);
    expect(codes).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const limited = await a.inject({ url: '/api/stats' });
    expect(limited.json().error).toBe('too many requests: more than 5 in 0.3 s from this address; retry in 1 s');
    await new Promise((r) => setTimeout(r, 350));
    expect((await a.inject({ url: '/api/stats' })).statusCode).toBe(200);
  });

  it('a fault in the model is a 500 with a JSON error, and the server goes on', async () => {
    const p = fakePredictor();
    let fail = true;
    const broken: Predictor = { ...p, embed: (img) => (fail ? (() => { throw new Error('out of memory'); })() : p.embed(img)) };
    const lines: string[] = [];
    const { app: a } = await serve([run(broken)], { log: (l) => lines.push(l) });
    const id = (await upload(a, png(picture(8, 8)))).json().id;
    const r = await predict(a, { image: id, run: 0, points: [{ x: 1, y: 1, label: 1 }] });
    expect(r.statusCode).toBe(500);
    expect(r.json().error).toBe('internal error: out of memory');
    expect(lines.join('\n')).toMatch(/out of memory/);
    fail = false;
    expect((await predict(a, { image: id, run: 0, points: [{ x: 1, y: 1, label: 1 }] })).statusCode).toBe(200);
  });
});

describe('Lru', () => {
  it('drops the least recently used entry past the count, and past the byte budget, calling onEvict', () => {
    const dropped: string[] = [];
    const lru = new Lru<number>({ maxEntries: 3, maxBytes: 10, sizeOf: (v) => v, onEvict: (k) => dropped.push(k) });
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    lru.get('a');
    lru.set('d', 1); // count: drops b
    expect(dropped).toEqual(['b']);
    lru.set('e', 8); // bytes: 3 + 1 + 1 + 8 > 10, drops c (then 10 bytes, 3 entries)
    expect(dropped).toEqual(['b', 'c']);
    expect([lru.size, lru.bytes]).toEqual([3, 10]);
    lru.set('f', 20); // alone over budget: the others go, f stays
    expect(dropped).toEqual(['b', 'c', 'a', 'd', 'e']);
    expect([lru.size, lru.has('f'), lru.bytes]).toEqual([1, true, 20]);
    lru.set('f', 2); // replacing evicts the old value
    expect(dropped.at(-1)).toBe('f');
    expect(() => new Lru({ maxEntries: 0 })).toThrow(/positive integer/);
  });
});
