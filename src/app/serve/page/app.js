// peft serve's page: opens an image (upload or a run's test image), turns
// clicks and drags on the canvas into point and box prompts, asks the server
// for the mask (POST /api/predict) and draws it over the image; undo, clear,
// opacity, candidate masks, ground truth, the run switch and the download
// act on that state. Plain DOM and canvas, no build step.
//
// For tests and scripts, the canvas carries data- attributes: state
// (empty | loading | ready | predicting | error), image (id), run, mask-seq
// (counts masks shown), mask-area (pixels of the mask shown), prompt (the
// JSON prompt of the mask shown, in image pixels).

const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');

const state = {
  runs: [],
  limits: { uploadBytes: Infinity, imagePixels: Infinity, points: 64 },
  run: 0,
  /** { id, name, width, height, truth: [names] } */
  image: null,
  /** the decoded image as the server holds it */
  bitmap: null,
  /** prompts in the order given: { kind: 'point', x, y, label } | { kind: 'box', box: [x0, y0, x1, y1] } */
  actions: [],
  /** the last answer of /api/predict for the current prompts */
  result: null,
  /** per mask of `result`: { bits: Uint8Array (0/1), overlay: canvas, png: base64 } */
  masks: [],
  shown: 0,
  /** ground truth: [{ name, bits, outline: canvas }] */
  truth: [],
  /** a box being dragged, in image pixels */
  drag: null,
  seq: 0,
  maskSeq: 0,
};

// ---------------------------------------------------------------- helpers

function showError(message) {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function setState(s) {
  canvas.dataset.state = s;
}

/** fetch → JSON, throwing the server's `{ error }` line (or what went wrong) as an Error. */
async function api(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new Error(`the server did not answer (${err.message}); is peft serve still running?`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: fall through to the status line
  }
  if (!res.ok) throw new Error(body && body.error ? body.error : `HTTP ${res.status} ${res.statusText}`);
  return body;
}

const postJson = (path, body) => api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** A base64 grey PNG → 0/1 per pixel. */
async function pngBits(base64, width, height) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
  const off = new OffscreenCanvas(width, height);
  const c = off.getContext('2d', { willReadFrequently: true });
  c.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = c.getImageData(0, 0, width, height).data;
  const bits = new Uint8Array(width * height);
  for (let i = 0; i < bits.length; i++) bits[i] = rgba[i * 4] > 127 ? 1 : 0;
  return bits;
}

/** A 0/1 mask as a coloured layer at the image's size; `outline` keeps only the border pixels. */
function layer(bits, width, height, rgb, outline) {
  const off = document.createElement('canvas');
  off.width = width;
  off.height = height;
  const c = off.getContext('2d');
  const img = c.createImageData(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!bits[i]) continue;
      if (outline) {
        const inner = x > 0 && x < width - 1 && y > 0 && y < height - 1 && bits[i - 1] && bits[i + 1] && bits[i - width] && bits[i + width];
        if (inner) continue;
      }
      img.data.set([rgb[0], rgb[1], rgb[2], 255], i * 4);
    }
  }
  c.putImageData(img, 0, 0);
  return off;
}

function dice(a, b) {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    sa += a[i];
    sb += b[i];
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

const fmtMs = (ms) => (ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`);

// ---------------------------------------------------------------- drawing

/** Display size: the image at least 512 px wide (small images scaled up), at most the page's width. */
function layout() {
  if (!state.image) return;
  const { width, height } = state.image;
  const room = $('stage').clientWidth || 800;
  const cssW = Math.min(room, Math.max(width, 512));
  const cssH = (cssW * height) / width;
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  draw();
}

function draw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.image || !state.bitmap) return;
  const { width, height } = state.image;
  const sx = canvas.width / width;
  const sy = canvas.height / height;
  // scaled up, pixels stay pixels: the mask shown is the mask computed
  ctx.imageSmoothingEnabled = sx < 1;
  ctx.drawImage(state.bitmap, 0, 0, canvas.width, canvas.height);
  const mask = state.masks[state.shown];
  if (mask) {
    ctx.globalAlpha = Number($('opacity').value);
    ctx.drawImage(mask.overlay, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }
  if ($('show-truth').checked) {
    const t = state.truth[Number($('truth-channel').value) || 0];
    if (t) ctx.drawImage(t.outline, 0, 0, canvas.width, canvas.height);
  }
  // prompts, in display pixels so they stay crisp on small images
  ctx.setTransform(sx, 0, 0, sy, 0, 0);
  const px = 1 / sx;
  const boxes = state.actions.filter((a) => a.kind === 'box');
  const box = state.drag ?? boxes.at(-1)?.box;
  if (box) {
    // white on a dark edge: visible on any image, and unlike the ground truth's yellow
    ctx.setLineDash(state.drag ? [6 * px, 4 * px] : []);
    for (const [colour, w] of [['rgba(0, 0, 0, 0.7)', 4], ['#fff', 2]]) {
      ctx.lineWidth = w * px;
      ctx.strokeStyle = colour;
      ctx.strokeRect(box[0], box[1], box[2] + 1 - box[0], box[3] + 1 - box[1]);
    }
    ctx.setLineDash([]);
  }
  for (const a of state.actions) {
    if (a.kind !== 'point') continue;
    ctx.beginPath();
    ctx.arc(a.x + 0.5, a.y + 0.5, 6 * px, 0, 2 * Math.PI);
    ctx.fillStyle = a.label ? '#1a7f37' : '#cf222e';
    ctx.fill();
    ctx.lineWidth = 2 * px;
    ctx.strokeStyle = '#fff';
    ctx.stroke();
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
}

// ---------------------------------------------------------------- controls

function updateControls() {
  const hasImage = Boolean(state.image);
  $('undo').disabled = state.actions.length === 0;
  $('clear').disabled = state.actions.length === 0;
  $('download').disabled = !state.masks[state.shown];
  const run = state.runs[state.run];
  $('multimask').disabled = !run || !run.multimask;
  const cand = $('candidate');
  cand.replaceChildren(
    ...state.masks.map((_, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      const m = state.result.masks[i];
      o.textContent = `${m.label ?? `candidate ${i + 1}`} (predicted IoU ${m.score.toFixed(2)})`;
      return o;
    }),
  );
  cand.value = String(state.shown);
  cand.disabled = state.masks.length < 2;
  const tc = $('truth-channel');
  $('show-truth').disabled = !hasImage || state.truth.length === 0;
  tc.disabled = state.truth.length < 2;
  if (state.truth.length === 0) $('show-truth').checked = false;
  canvas.dataset.image = state.image ? state.image.id : '';
  canvas.dataset.run = String(state.run);
}

function describeResult() {
  const r = state.result;
  const run = state.runs[state.run];
  if (!r) {
    $('swatch').hidden = true;
    $('status-text').textContent = state.image ? `${state.image.name}, ${state.image.width}x${state.image.height}: click on the image.` : '';
    return;
  }
  const t = r.timing;
  const m = state.masks[state.shown];
  const shownLabel = r.masks[state.shown].label;
  const [cr, cg, cb] = r.masks[state.shown].colour;
  $('swatch').style.background = `rgb(${cr}, ${cg}, ${cb})`;
  $('swatch').hidden = false;
  let text = `${run.label}: ${shownLabel ? `${shownLabel} ` : ''}mask of ${r.masks[state.shown].area} px, decoder ${fmtMs(t.decoderMs)}, ${t.cached ? 'image embedding cached' : `encoder ${fmtMs(t.encoderMs)}`}, answer in ${fmtMs(t.totalMs)}.`;
  if (m && state.truth.length) {
    // a class mask against its own structure; a candidate against each
    const label = r.masks[state.shown].label;
    const own = state.truth.filter((g) => g.name === label);
    text += ` Dice vs ground truth: ${(own.length ? own : state.truth).map((g) => `${g.name} ${dice(m.bits, g.bits).toFixed(3)}`).join(', ')}.`;
  }
  $('status-text').textContent = text;
}

async function refreshStats() {
  try {
    const s = await api('/api/stats');
    $('stats').textContent = `Encoder runs: ${s.encoderRuns} · decoder runs: ${s.decoderRuns} · cached embeddings: ${s.cacheSize}/${s.cacheCapacity}`;
  } catch {
    // the stats line is informative only
  }
}

// ---------------------------------------------------------------- server calls

async function predict() {
  const seq = ++state.seq;
  if (!state.image) return;
  const points = state.actions.filter((a) => a.kind === 'point').map(({ x, y, label }) => ({ x, y, label }));
  const box = state.actions.filter((a) => a.kind === 'box').at(-1)?.box;
  if (points.length === 0 && !box) {
    state.result = null;
    state.masks = [];
    state.shown = 0;
    canvas.dataset.maskArea = '0';
    canvas.dataset.maskSeq = String(++state.maskSeq);
    setState('ready');
    updateControls();
    describeResult();
    draw();
    return;
  }
  setState('predicting');
  const body = { image: state.image.id, run: state.run, points, multimask: $('multimask').checked && !$('multimask').disabled };
  if (box) body.box = box;
  try {
    const r = await postJson('/api/predict', body);
    const masks = [];
    for (const m of r.masks) {
      const bits = await pngBits(m.png, r.width, r.height);
      masks.push({ bits, png: m.png, overlay: layer(bits, r.width, r.height, m.colour, false) });
    }
    if (seq !== state.seq) return; // a newer prompt is on its way
    state.result = r;
    state.masks = masks;
    state.shown = Math.min(state.shown, masks.length - 1);
    clearError();
    setState('ready');
    canvas.dataset.prompt = JSON.stringify(box ? { points, box } : { points });
    canvas.dataset.maskArea = String(r.masks[state.shown].area);
    canvas.dataset.maskSeq = String(++state.maskSeq);
    updateControls();
    describeResult();
    draw();
    refreshStats();
  } catch (err) {
    if (seq !== state.seq) return;
    setState('error');
    showError(err.message);
  }
}

async function showImage(info) {
  const res = await fetch(`/api/images/${info.id}/image.png`);
  if (!res.ok) throw new Error(`cannot load the image back from the server (HTTP ${res.status})`);
  const bitmap = await createImageBitmap(await res.blob());
  state.bitmap?.close?.();
  state.bitmap = bitmap;
  state.image = info;
  state.actions = [];
  state.result = null;
  state.masks = [];
  state.shown = 0;
  state.truth = [];
  const tc = $('truth-channel');
  tc.replaceChildren();
  if (info.truth.length) {
    const t = await api(`/api/images/${info.id}/truth`);
    for (const [i, m] of t.masks.entries()) {
      const bits = await pngBits(m.png, t.width, t.height);
      // white: no class colour is white, so the outline never hides in a mask of the same colour
      state.truth.push({ name: m.name, bits, outline: layer(bits, t.width, t.height, [255, 255, 255], true) });
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = m.name;
      tc.append(o);
    }
    // the last structure is the outer one (REFUGE: disc around cup)
    tc.value = String(state.truth.length - 1);
  }
  setState('ready');
  updateControls();
  layout();
  describeResult();
}

async function openUpload(file) {
  clearError();
  if (file.size > state.limits.uploadBytes) {
    showError(`${file.name}: ${(file.size / 1048576).toFixed(1)} MiB is larger than the server accepts (${(state.limits.uploadBytes / 1048576).toFixed(0)} MiB)`);
    return;
  }
  setState('loading');
  try {
    // always as bytes: the server tells the format from the magic bytes, not from the name
    const info = await api('/api/images', { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-file-name': encodeURIComponent(file.name) }, body: file });
    $('test-image').value = '';
    await showImage(info);
  } catch (err) {
    setState(state.image ? 'ready' : 'empty');
    showError(err.message);
  }
}

async function openTestImage(index) {
  clearError();
  setState('loading');
  try {
    await showImage(await postJson('/api/test-images', { run: state.run, index }));
    $('upload').value = '';
  } catch (err) {
    setState(state.image ? 'ready' : 'empty');
    showError(err.message);
  }
}

async function loadTestList() {
  const sel = $('test-image');
  const keep = sel.value;
  sel.replaceChildren(new Option('(none)', ''));
  sel.disabled = true;
  const run = state.runs[state.run];
  if (!run.testSplit) return;
  const list = await api(`/api/runs/${state.run}/test-images`);
  for (const im of list.images) sel.append(new Option(`${im.name} (${list.split})`, String(im.index)));
  sel.disabled = list.images.length === 0;
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

// ---------------------------------------------------------------- input

/** Where a pointer event falls on the image, in image pixels from its top-left corner (0..width), clamped. */
function imageXY(ev) {
  const r = canvas.getBoundingClientRect();
  const { width, height } = state.image;
  const x = ((ev.clientX - r.left) / r.width) * width;
  const y = ((ev.clientY - r.top) / r.height) * height;
  return [Math.min(width, Math.max(0, x)), Math.min(height, Math.max(0, y))];
}

// Prompts are pixel indices, as `peft predict --point x,y --box x0,y0,x1,y1`
// takes them: a point is the pixel clicked, a box its first and last pixel.
const pixel = (v, size) => Math.min(size - 1, Math.floor(v));

/** The pixels a drag from corner a to corner b covers: [x0, y0, x1, y1], inclusive. */
function boxOf([ax, ay], [bx, by]) {
  const { width, height } = state.image;
  const x0 = pixel(Math.min(ax, bx), width);
  const y0 = pixel(Math.min(ay, by), height);
  return [x0, y0, Math.max(x0, Math.ceil(Math.max(ax, bx)) - 1), Math.max(y0, Math.ceil(Math.max(ay, by)) - 1)];
}

let press = null;

canvas.addEventListener('contextmenu', (ev) => ev.preventDefault());

canvas.addEventListener('pointerdown', (ev) => {
  if (!state.image || (ev.button !== 0 && ev.button !== 2)) return;
  canvas.setPointerCapture(ev.pointerId);
  press = { button: ev.button, cx: ev.clientX, cy: ev.clientY, start: imageXY(ev), moved: false };
});

canvas.addEventListener('pointermove', (ev) => {
  if (!press) return;
  if (!press.moved && Math.hypot(ev.clientX - press.cx, ev.clientY - press.cy) < 5) return;
  press.moved = true;
  state.drag = boxOf(press.start, imageXY(ev));
  draw();
});

canvas.addEventListener('pointerup', (ev) => {
  if (!press) return;
  const p = press;
  press = null;
  if (p.moved && state.drag) {
    state.actions.push({ kind: 'box', box: state.drag });
    state.drag = null;
  } else {
    const x = pixel(p.start[0], state.image.width);
    const y = pixel(p.start[1], state.image.height);
    const negative = p.button === 2 || $('negative').checked;
    if (state.actions.filter((a) => a.kind === 'point').length >= state.limits.points) {
      showError(`at most ${state.limits.points} points per prompt; undo or clear first`);
      return;
    }
    state.actions.push({ kind: 'point', x, y, label: negative ? 0 : 1 });
  }
  updateControls();
  draw();
  predict();
});

canvas.addEventListener('pointercancel', () => {
  press = null;
  state.drag = null;
  draw();
});

function undo() {
  if (!state.actions.length) return;
  state.actions.pop();
  updateControls();
  draw();
  predict();
}

function clear() {
  state.actions = [];
  updateControls();
  predict();
}

$('undo').addEventListener('click', undo);
$('clear').addEventListener('click', clear);
document.addEventListener('keydown', (ev) => {
  if ((ev.ctrlKey || ev.metaKey) && ev.key === 'z' && state.image) {
    ev.preventDefault();
    undo();
  }
});
$('opacity').addEventListener('input', draw);
$('multimask').addEventListener('change', () => {
  state.shown = 0;
  predict();
});
$('candidate').addEventListener('change', () => {
  state.shown = Number($('candidate').value);
  canvas.dataset.maskArea = String(state.result.masks[state.shown].area);
  canvas.dataset.maskSeq = String(++state.maskSeq);
  updateControls();
  describeResult();
  draw();
});
$('show-truth').addEventListener('change', draw);
$('truth-channel').addEventListener('change', draw);
$('upload').addEventListener('change', () => {
  const f = $('upload').files[0];
  if (f) openUpload(f);
});
$('test-image').addEventListener('change', () => {
  const v = $('test-image').value;
  if (v !== '') openTestImage(Number(v));
});
$('download').addEventListener('click', () => {
  const m = state.masks[state.shown];
  if (!m) return;
  const bytes = Uint8Array.from(atob(m.png), (c) => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: 'image/png' }));
  const a = document.createElement('a');
  const stem = state.image.name.replace(/\.[^.]*$/, '') || 'image';
  a.href = url;
  const which = state.result.masks[state.shown].label ?? (state.masks.length > 1 ? String(state.shown + 1) : '');
  a.download = `${stem}-mask-run${state.run}${which ? `-${which.replace(/[^\w.-]+/g, '_')}` : ''}.png`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
});
window.addEventListener('resize', layout);

// ---------------------------------------------------------------- start

function buildRunSwitch() {
  const fs = $('run-switch');
  if (state.runs.length < 2) return;
  for (const r of state.runs) {
    const id = `run-${r.index}`;
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'run';
    input.id = id;
    input.value = String(r.index);
    input.checked = r.index === state.run;
    input.addEventListener('change', async () => {
      state.run = r.index;
      state.shown = 0;
      updateControls();
      try {
        await loadTestList();
      } catch (err) {
        showError(err.message);
      }
      predict();
    });
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = r.description ? `${r.label} (${r.description})` : r.label;
    const wrap = document.createElement('span');
    wrap.append(input, ' ', label);
    fs.append(wrap);
  }
  fs.hidden = false;
}

async function start() {
  try {
    const info = await api('/api/runs');
    state.runs = info.runs;
    state.limits = info.limits;
    $('served').textContent =
      state.runs.length === 1 ? `Serving ${state.runs[0].label}${state.runs[0].description ? ` (${state.runs[0].description})` : ''}.` : `Serving ${state.runs.length} runs: switch between them to compare their masks on the same prompts.`;
    buildRunSwitch();
    updateControls();
    await loadTestList();
    refreshStats();
  } catch (err) {
    showError(err.message);
  }
}

start();
