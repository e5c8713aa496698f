// The `peft serve` web server (fastify): one page and a small JSON API over
// trained models (`Predictor`s). An image is uploaded (or picked from a run's
// test split) once; each prompt then runs only the prompt encoder and mask
// decoder against the image's embedding, which an LRU cache keyed by
// (image, run) keeps, disposing the tensors it drops. Every request is
// validated (JSON schemas, body size, image type by magic bytes, image size,
// coordinates, run index); every error is JSON `{ error }` with a 4xx status,
// and the server keeps serving. docs/serve.md documents the API.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { PeftError } from '../../core/errors.js';
import { decodeImage, encodePng, type Image8 } from '../data/image-io.js';
import { describeStart, imageFormatNames, readImageHeader, sniffFormat } from '../data/image-header.js';
import { binaryMask, classColour, maskArea, maskPng } from '../pictures/overlay.js';
import { checkPromptInside, MASK_THRESHOLD } from '../predict/predict-images.js';
import type { ImageEmbedding, PointPrompt, Predictor, PromptSpec } from '../predict/types.js';
import { Lru } from './lru.js';
import type { TestImageSource, TruthMask } from './test-images.js';

/** A trained model the server answers for. */
export interface ServedRun {
  /** How the page names it (the run folder and checkpoint). */
  label: string;
  /** Backbone and method, shown beside the label. */
  description?: string;
  predictor: Predictor;
  /** Whether the head gives several candidate masks per prompt (the page offers the choice). */
  multimask: boolean;
  /** The images the run was scored on, with their ground truth. */
  testImages?: TestImageSource;
}

export interface ServeLimits {
  /** Largest upload, bytes. */
  uploadBytes: number;
  /** Largest image, pixels (width x height), checked from the header before decoding. */
  imagePixels: number;
  /** Images held (uploads and opened test images), least recently used dropped first. */
  images: number;
  /** Bytes of decoded pixels held. */
  imageBytes: number;
  /** Image embeddings held (one per image and run). */
  embeddings: number;
  /** Points in one prompt. */
  points: number;
}

export const defaultServeLimits: ServeLimits = {
  uploadBytes: 16 * 1024 * 1024,
  imagePixels: 4096 * 4096,
  images: 32,
  imageBytes: 512 * 1024 * 1024,
  embeddings: 8,
  points: 64,
};

export interface RateLimit {
  /** Requests one client address may make per window. */
  max: number;
  windowMs: number;
}

/** 600 requests a minute per address: ten a second on average, far above a person clicking, far below a flood. */
export const defaultServeRateLimit: RateLimit = { max: 600, windowMs: 60_000 };

export interface ServeAppOptions {
  limits?: Partial<ServeLimits>;
  /** `false`: no limit. */
  rateLimit?: RateLimit | false;
  /**
   * Host names the server answers to (the Host header, without the port).
   * Default: the loopback names, which stops another web site's page from
   * reaching the server through DNS rebinding. `undefined` entries are
   * ignored; an empty list answers any host (a server bound to another address).
   */
  allowedHosts?: string[];
  /** Where server faults (5xx) are reported. */
  log?: (line: string) => void;
}

export interface ServeStats {
  /** Image encoder runs since start: one per (image, run) not in the cache. */
  encoderRuns: number;
  /** Prompt encoder + mask decoder runs. */
  decoderRuns: number;
  cacheSize: number;
  cacheCapacity: number;
  cacheHits: number;
  images: number;
  imageBytes: number;
  runs: number;
}

export const loopbackHosts = ['127.0.0.1', 'localhost', '[::1]', '::1'];

/** Whether an address to listen on is loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return loopbackHosts.includes(h) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** An error with the HTTP status it answers with. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

interface HeldImage {
  id: string;
  name: string;
  image: Image8;
  truth: TruthMask[];
  /** The decoded pixels as PNG, made on first request. */
  png?: Buffer;
}

const pageDir = fileURLToPath(new URL('./page/', import.meta.url));

/** The page's two files, read once. */
function readPage(): { html: string; js: string } {
  try {
    return { html: readFileSync(`${pageDir}index.html`, 'utf8'), js: readFileSync(`${pageDir}app.js`, 'utf8') };
  } catch (err) {
    throw new Error(`peft serve: the page files are missing from ${pageDir} (${(err as Error).message}); 'npm run build' copies them there`);
  }
}

/** JSON request bodies (a prompt) are small; uploads have their own limit. */
const JSON_BODY_BYTES = 64 * 1024;

/** 16 MiB, 1.5 MiB, 3.9 KiB. */
function bytesText(n: number): string {
  const [unit, size] = n >= 1024 * 1024 ? ['MiB', 1024 * 1024] : ['KiB', 1024];
  const v = n / size;
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
}

const imageId = { type: 'string', pattern: '^[ut][0-9a-f]{16}$' } as const;
const runIndex = { type: 'integer', minimum: 0, maximum: 1000 } as const;

/** Builds the app (not listening): `inject()` it in tests, or `listen()` it (`startServer`). */
export async function createServeApp(runs: ServedRun[], options: ServeAppOptions = {}): Promise<{ app: FastifyInstance; stats: () => ServeStats }> {
  if (runs.length === 0) throw new PeftError('peft serve needs at least one run');
  const limits: ServeLimits = { ...defaultServeLimits, ...options.limits };
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const page = readPage();
  const allowed = new Set((options.allowedHosts ?? loopbackHosts).map((h) => h.toLowerCase()));

  const counters = { encoderRuns: 0, decoderRuns: 0, cacheHits: 0 };
  const embeddings = new Lru<ImageEmbedding>({ maxEntries: limits.embeddings, onEvict: (_k, e) => e.dispose() });
  const images = new Lru<HeldImage>({
    maxEntries: limits.images,
    maxBytes: limits.imageBytes,
    sizeOf: (h) => h.image.data.byteLength + h.truth.reduce((a, t) => a + t.mask.byteLength, 0),
    // an image's embeddings go with it
    onEvict: (id) => embeddings.deleteWhere((k) => k.startsWith(`${id}|`)),
  });

  const app = Fastify({
    logger: false,
    bodyLimit: JSON_BODY_BYTES,
    // no type coercion, no silent removal: a bad field is a 400 naming it
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // a slow or stuck client cannot hold the server
    requestTimeout: 60_000,
    return503OnClosing: true,
  });
  app.addHook('onClose', async () => {
    embeddings.clear();
    images.clear();
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const { status, message } = describeError(err, limits);
    if (status >= 500) log(`peft serve: ${err.stack ?? err.message}`);
    void reply.code(status).send({ error: message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no such page or API route: ${req.method} ${req.url.split('?')[0]}` });
  });

  app.addHook('onRequest', async (req) => {
    if (allowed.size === 0) return;
    const host = hostName(req.headers.host);
    if (!allowed.has(host)) throw new HttpError(403, `this server answers to ${[...allowed].join(', ')}, not to host '${host}'`);
  });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });

  if (options.rateLimit !== false) {
    const rl = options.rateLimit ?? defaultServeRateLimit;
    await app.register(rateLimit, {
      global: true,
      max: rl.max,
      timeWindow: rl.windowMs,
      errorResponseBuilder: (_req, ctx) => new HttpError(429, `too many requests: more than ${ctx.max} in ${rl.windowMs / 1000} s from this address; retry in ${Math.max(1, Math.ceil(ctx.ttl / 1000))} s`),
    });
  }

  // uploads: the raw image bytes as the body, refused past the limit while they arrive
  for (const type of ['application/octet-stream', 'application/dicom', /^image\/[a-z0-9.+-]+$/i]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: limits.uploadBytes }, (_req, body, done) => done(null, body));
  }

  const runAt = (i: number): ServedRun => {
    const r = runs[i];
    if (!r) throw new HttpError(404, `no run ${i}: serving ${runs.length} run${runs.length === 1 ? '' : 's'} (0..${runs.length - 1})`);
    return r;
  };
  const imageAt = (id: string): HeldImage => {
    const h = images.get(id);
    if (!h) throw new HttpError(404, `no image '${id}': it was never opened or was dropped from the server's ${limits.images} held images; open it again`);
    return h;
  };
  const hold = (h: HeldImage) => {
    images.set(h.id, h);
    return { id: h.id, name: h.name, width: h.image.width, height: h.image.height, truth: h.truth.map((t) => t.name) };
  };

  // the page
  app.get('/', async (_req, reply) => {
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    return reply.type('text/html; charset=utf-8').send(page.html);
  });
  app.get('/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(page.js));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  app.get('/api/runs', async () => ({
    runs: runs.map((r, index) => ({
      index,
      label: r.label,
      description: r.description ?? '',
      imageSize: r.predictor.imageSize,
      multimask: r.multimask,
      testSplit: r.testImages?.split ?? null,
    })),
    limits: { uploadBytes: limits.uploadBytes, imagePixels: limits.imagePixels, points: limits.points },
  }));

  app.get<{ Params: { run: string } }>(
    '/api/runs/:run/test-images',
    { schema: { params: { type: 'object', properties: { run: { type: 'string', pattern: '^[0-9]{1,4}$' } }, required: ['run'] } } },
    async (req) => {
      const run = runAt(Number(req.params.run));
      return { split: run.testImages?.split ?? null, images: (run.testImages?.names ?? []).map((name, index) => ({ index, name })) };
    },
  );

  app.post<{ Body: { run: number; index: number } }>(
    '/api/test-images',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['run', 'index'], properties: { run: runIndex, index: { type: 'integer', minimum: 0 } } } } },
    async (req) => {
      const run = runAt(req.body.run);
      const src = run.testImages;
      if (!src) throw new HttpError(404, `run ${req.body.run} (${run.label}) has no test images to open`);
      const i = req.body.index;
      if (i >= src.names.length) throw new HttpError(404, `no test image ${i} in run ${req.body.run}'s ${src.split} (0..${src.names.length - 1})`);
      const id = `t${hash(src.path(i))}`;
      const held = images.get(id);
      if (held) return hold(held);
      const t = await src.load(i);
      return hold({ id, name: t.name, image: t.image, truth: t.truth });
    },
  );

  app.post('/api/images', async (req) => {
    const bytes = req.body;
    if (!Buffer.isBuffer(bytes)) throw new HttpError(415, 'send the image file itself as the request body, with Content-Type application/octet-stream (or image/*, application/dicom)');
    const name = fileName(req.headers['x-file-name']);
    if (!sniffFormat(bytes)) throw new HttpError(415, `${name}: not a ${imageFormatNames} image (${describeStart(bytes)})`);
    const header = readImageHeader(bytes, name);
    if (header.width * header.height > limits.imagePixels) {
      throw new HttpError(413, `${name}: ${header.width}x${header.height} pixels is too large to serve (limit ${limits.imagePixels} pixels, e.g. ${Math.floor(Math.sqrt(limits.imagePixels))}x${Math.floor(Math.sqrt(limits.imagePixels))}); scale it down first`);
    }
    const id = `u${hash(bytes)}`;
    const held = images.get(id);
    if (held) return hold(held);
    return hold({ id, name, image: decodeImage(bytes, name, 'rgb'), truth: [] });
  });

  app.get<{ Params: { id: string } }>('/api/images/:id/image.png', { schema: { params: { type: 'object', properties: { id: imageId }, required: ['id'] } } }, async (req, reply) => {
    const h = imageAt(req.params.id);
    h.png ??= Buffer.from(encodePng(h.image));
    reply.header('cache-control', 'private, max-age=3600');
    return reply.type('image/png').send(h.png);
  });

  app.get<{ Params: { id: string } }>('/api/images/:id/truth', { schema: { params: { type: 'object', properties: { id: imageId }, required: ['id'] } } }, async (req) => {
    const h = imageAt(req.params.id);
    const { width, height } = h.image;
    return { width, height, masks: h.truth.map((t) => ({ name: t.name, area: maskArea(t.mask), png: maskPngBase64(t.mask, width, height) })) };
  });

  app.post<{ Body: PredictBody }>('/api/predict', { schema: { body: predictBodySchema(limits.points) } }, async (req) => {
    const t0 = performance.now();
    const body = req.body;
    const run = runAt(body.run);
    const held = imageAt(body.image);
    const prompt = checkPrompt(body, held.image.width, held.image.height);
    if (body.multimask && !run.multimask) throw new HttpError(400, `run ${body.run} (${run.label}): its head gives one mask per prompt; ask without multimask`);
    const key = `${held.id}|${body.run}`;
    let embedding = embeddings.get(key);
    const cached = embedding !== undefined;
    if (embedding) counters.cacheHits++;
    else {
      embedding = run.predictor.embed(held.image);
      counters.encoderRuns++;
      embeddings.set(key, embedding);
    }
    const prediction = run.predictor.predict(embedding, prompt, { multimask: body.multimask ?? false });
    counters.decoderRuns++;
    const masks = prediction.masks.map((m, k) => {
      const bin = binaryMask(m.probability, MASK_THRESHOLD);
      // the colour peft predict's overlays and the report give this class (or candidate)
      return { label: m.label ?? null, score: m.score, area: maskArea(bin), colour: [...classColour(k)], png: maskPngBase64(bin, prediction.width, prediction.height) };
    });
    return {
      run: body.run,
      image: held.id,
      width: prediction.width,
      height: prediction.height,
      masks,
      timing: { cached, encoderMs: cached ? 0 : embedding.ms, decoderMs: prediction.ms, totalMs: performance.now() - t0 },
    };
  });

  const stats = (): ServeStats => ({
    ...counters,
    cacheSize: embeddings.size,
    cacheCapacity: limits.embeddings,
    images: images.size,
    imageBytes: images.bytes,
    runs: runs.length,
  });
  app.get('/api/stats', async () => stats());

  return { app, stats };
}

interface PredictBody {
  image: string;
  run: number;
  points?: PointPrompt[];
  box?: [number, number, number, number];
  multimask?: boolean;
}

function predictBodySchema(maxPoints: number) {
  const coord = { type: 'number' } as const;
  return {
    type: 'object',
    additionalProperties: false,
    required: ['image', 'run'],
    properties: {
      image: imageId,
      run: runIndex,
      points: {
        type: 'array',
        maxItems: maxPoints,
        items: { type: 'object', additionalProperties: false, required: ['x', 'y', 'label'], properties: { x: coord, y: coord, label: { enum: [0, 1] } } },
      },
      box: { type: 'array', minItems: 4, maxItems: 4, items: coord },
      multimask: { type: 'boolean' },
    },
  } as const;
}

/**
 * The prompt, checked as `peft predict` checks it: coordinates are pixel
 * indices (pixel centres), inside 0..width-1 x 0..height-1; a box is its first
 * and last pixel.
 */
function checkPrompt(body: PredictBody, width: number, height: number): PromptSpec {
  const points = body.points ?? [];
  if (points.length === 0 && !body.box) throw new HttpError(400, 'a prompt needs at least one point or a box');
  const prompt: PromptSpec = { points: points.map((p) => ({ x: p.x, y: p.y, label: p.label })) };
  if (body.box) {
    const [x0, y0, x1, y1] = body.box;
    if (x1 < x0 || y1 < y0) throw new HttpError(400, `box ${body.box.join(',')} must be x0,y0,x1,y1 with x0 <= x1 and y0 <= y1`);
    prompt.box = [x0, y0, x1, y1];
  }
  checkPromptInside(prompt, width, height);
  return prompt;
}

/** A 0/1 mask as base64 of the grey PNG `peft predict` writes (0 outside, 255 inside). */
const maskPngBase64 = (mask: Uint8Array, width: number, height: number): string => Buffer.from(maskPng(mask, width, height)).toString('base64');

/** The status and one-line message of any error a request raised. */
function describeError(err: FastifyError, limits: ServeLimits): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.statusCode, message: err.message };
  if (err.validation) return { status: 400, message: `invalid request: ${err.validationContext ?? 'body'}${err.message.replace(/^(body|params|querystring|headers)/, '')}` };
  if (err instanceof PeftError) return { status: 400, message: err.message };
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `request body too large (uploads up to ${bytesText(limits.uploadBytes)}, other requests up to ${bytesText(JSON_BODY_BYTES)})` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: `unsupported Content-Type: uploads send the image file's bytes as application/octet-stream (or image/*, application/dicom); the API's other requests send application/json` };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, message: `invalid JSON body: ${err.message}` };
  }
  const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
  return { status, message: status >= 500 ? `internal error: ${err.message}` : err.message };
}

function hash(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 16);
}

/** The host name of a Host header, lower case, without the port. */
function hostName(header: string | undefined): string {
  const h = (header ?? '').toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon >= 0 ? h.slice(0, colon) : h;
}

/** The upload's name for messages (the page sends it URI-encoded), printable and short. */
function fileName(header: string | string[] | undefined): string {
  let name = Array.isArray(header) ? header[0] : header;
  try {
    name = name ? decodeURIComponent(name) : undefined;
  } catch {
    // keep the raw header
  }
  const clean = (name ?? '').replace(/[^\p{L}\p{N} ._()+-]/gu, '_').slice(0, 120);
  return clean || 'upload';
}

export interface StartedServer {
  /** `http://host:port` as a browser reaches it. */
  url: string;
  port: number;
  app: FastifyInstance;
  stats: () => ServeStats;
  close(): Promise<void>;
}

/** Listens on `host:port` (port 0: a free one). */
export async function startServer(runs: ServedRun[], options: ServeAppOptions & { host?: string; port?: number } = {}): Promise<StartedServer> {
  const host = options.host ?? '127.0.0.1';
  const allowedHosts = options.allowedHosts ?? (isLoopback(host) ? [...loopbackHosts, host] : []);
  const { app, stats } = await createServeApp(runs, { ...options, allowedHosts });
  try {
    await app.listen({ host, port: options.port ?? 0 });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new PeftError(`port ${options.port} on ${host} is in use; pick another with --port (0: any free port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new PeftError(`cannot listen on ${host}: no such local address (--host)`);
    if (code === 'EACCES') throw new PeftError(`not allowed to listen on ${host}:${options.port} (ports below 1024 need privileges; --port)`);
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (options.port ?? 0);
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return { url: `http://${shown}:${port}`, port, app, stats, close: () => app.close() };
}
