// AdaLoRA's own laws (its `MethodDefinition.laws`, run by `peft verify
// adalora` after the core laws): the rank budget and the pruning of an
// injector with `budgetAt(step)` and `afterStep`, whose layers hold `lora_A`,
// `lora_E`, `lora_B`, configured by init_r, target_r, init_warmup,
// final_warmup, mask_interval, total_step, beta1, beta2. The allocator is
// driven as the reference fixture's protocol does: every step, fresh random A,
// E, B and gradients, then `afterStep({step})`; the law keeps its own float64
// importance scores to judge the masks. Written against the public API only,
// as an external method's laws would be.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Subject,
  checkLaw,
  fc,
  loadAdapter,
  maxAbsDiff,
  randomTensor,
  readAdapterConfig,
  sameValues,
  saveAdapter,
  subSeed,
  tf,
  toyShape,
  valueAndGrads,
  violation,
  type Law,
  type LawParams,
  type LawTally,
  type MethodDefinition,
  type ToyShape,
} from '../../src/index.js';

export interface ScheduleCase {
  shape: ToyShape;
  init_r: number;
  target_r: number;
  init_warmup: number;
  final_warmup: number;
  mask_interval: number;
  total_step: number;
  beta1: number;
  beta2: number;
}

/** A method that allocates a rank budget (AdaLoRA's injector). */
export interface RankBudgetMethod {
  budgetAt(step: number): number;
}

export function isRankBudgetMethod(m: unknown): m is RankBudgetMethod {
  return typeof (m as Partial<RankBudgetMethod>)?.budgetAt === 'function';
}

export function scheduleCases(opts: { minFinalWarmup?: number; equalRanks?: boolean } = {}): fc.Arbitrary<ScheduleCase> {
  return fc
    .integer({ min: 1, max: 4 })
    .chain((r) =>
      fc.record({
        shape: toyShape,
        init_r: fc.constant(r),
        target_r: opts.equalRanks ? fc.constant(r) : fc.integer({ min: 0, max: r }),
        init_warmup: fc.integer({ min: 0, max: 3 }),
        final_warmup: fc.integer({ min: opts.minFinalWarmup ?? 0, max: 3 }),
        extra: fc.integer({ min: 1, max: 8 }),
        mask_interval: fc.integer({ min: 1, max: 3 }),
        beta1: fc.constantFrom(0.85, 0.5, 0.9),
        beta2: fc.constantFrom(0.85, 0.5, 0.95),
      }),
    )
    .map(({ extra, ...c }) => ({ ...c, total_step: c.init_warmup + c.final_warmup + extra }));
}

function configOf(c: ScheduleCase): Record<string, unknown> {
  const { shape: _shape, ...schedule } = c;
  return { ...schedule, alpha: 1, targets: ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'], orth_reg_weight: 0.1 };
}

/** The reference schedule, written independently of the method. */
export function referenceBudget(c: ScheduleCase, total: number, target: number, t: number): { budget: number; mask: boolean } {
  const ti = c.init_warmup;
  const T = c.total_step;
  const tfw = c.final_warmup;
  if (t <= ti) return { budget: total, mask: false };
  if (t > T - tfw) return { budget: target, mask: true };
  const coeff = 1 - (t - ti) / (T - tfw - ti);
  return { budget: Math.trunc(target + (total - target) * coeff ** 3), mask: t % c.mask_interval === 0 };
}

interface StepTrace {
  t: number;
  budget: number;
  mask: boolean;
  /** Per layer path: E before and after the step's update. */
  ePre: Map<string, Float32Array>;
  ePost: Map<string, Float32Array>;
  /** Whether A and B are bit-identical before and after. */
  abUntouched: boolean;
  /** The law's own triplet scores (float64) at this step. */
  scores: Map<string, number[]>;
}

function layerPaths(s: Subject): string[] {
  return s.model
    .namedParameters()
    .filter(([k]) => k.endsWith('.lora_E'))
    .map(([k]) => k.slice(0, -'.lora_E'.length));
}

/** Runs the fixture protocol for t = 1..T (or `steps`) on a composed subject. */
function runProtocol(s: Subject, c: ScheduleCase, steps = c.total_step): { trace: StepTrace[]; total: number; target: number } {
  const paths = layerPaths(s);
  const params = new Map(s.model.namedParameters());
  const total = c.init_r * paths.length;
  const target = c.target_r * paths.length;
  const ema = new Map<string, Float64Array>();
  const unc = new Map<string, Float64Array>();
  const trace: StepTrace[] = [];
  for (let t = 1; t <= steps; t++) {
    const grads = new Map<string, tf.Tensor>();
    const values = new Map<string, { p: Float32Array; g: Float32Array }>();
    paths.forEach((path, li) => {
      for (const [j, name] of ['lora_A', 'lora_E', 'lora_B'].entries()) {
        const key = `${path}.${name}`;
        const p = params.get(key)!;
        const seed = subSeed(c.shape.seed, 100 + t, li, j);
        tf.tidy(() => {
          const v = randomTensor(p.shape, seed, -1, 1);
          // E: magnitudes in [0.2, 1] so kept entries are never zero
          p.assign(name === 'lora_E' ? tf.mul(tf.sign(v), tf.add(tf.mul(tf.abs(v), 0.8), 0.2)) : v);
        });
        const g = randomTensor(p.shape, subSeed(seed, 7), -1, 1);
        grads.set(key, g);
        values.set(key, { p: p.variable.dataSync() as Float32Array, g: g.dataSync() as Float32Array });
      }
    });
    if (t < c.total_step - c.final_warmup) {
      for (const [key, { p, g }] of values) {
        const e = ema.get(key) ?? new Float64Array(p.length);
        const u = unc.get(key) ?? new Float64Array(p.length);
        for (let i = 0; i < p.length; i++) {
          const ipt = Math.abs(p[i]! * g[i]!);
          e[i] = c.beta1 * e[i]! + (1 - c.beta1) * ipt;
          u[i] = c.beta2 * u[i]! + (1 - c.beta2) * Math.abs(ipt - e[i]!);
        }
        ema.set(key, e);
        unc.set(key, u);
      }
    }
    const scores = new Map<string, number[]>();
    for (const path of paths) {
      const score = (name: string, i: number) => (ema.get(`${path}.${name}`)?.[i] ?? 0) * (unc.get(`${path}.${name}`)?.[i] ?? 0);
      const [r, inF] = params.get(`${path}.lora_A`)!.shape as [number, number];
      const out = params.get(`${path}.lora_B`)!.shape[0]!;
      const row: number[] = [];
      for (let i = 0; i < r; i++) {
        let a = 0;
        for (let j = 0; j < inF; j++) a += score('lora_A', i * inF + j);
        let b = 0;
        for (let k = 0; k < out; k++) b += score('lora_B', k * r + i);
        row.push(score('lora_E', i) + a / inF + b / out);
      }
      scores.set(path, row);
    }
    const ePre = new Map(paths.map((p) => [p, Float32Array.from(values.get(`${p}.lora_E`)!.p)]));
    const abBefore = paths.flatMap((p) => [values.get(`${p}.lora_A`)!.p, values.get(`${p}.lora_B`)!.p]);
    try {
      s.method.afterStep!({ step: t, model: s.model, grads });
    } finally {
      for (const g of grads.values()) g.dispose();
    }
    const ePost = new Map(paths.map((p) => [p, Float32Array.from(params.get(`${p}.lora_E`)!.variable.dataSync() as Float32Array)]));
    const abAfter = paths.flatMap((p) => [params.get(`${p}.lora_A`)!.variable.dataSync(), params.get(`${p}.lora_B`)!.variable.dataSync()]);
    const abUntouched = abBefore.every((b, i) => {
      const a = abAfter[i]!;
      return a.length === b.length && b.every((v, j) => Object.is(v, a[j]));
    });
    trace.push({ t, ...referenceBudget(c, total, target, t), ePre, ePost, abUntouched, scores });
  }
  return { trace, total, target };
}

/** Triplets masked at a step (E non-zero before, zero after), and kept ones, as `path#i`. */
function maskedAndKept(step: StepTrace): { masked: string[]; kept: string[] } {
  const masked: string[] = [];
  const kept: string[] = [];
  for (const [path, post] of step.ePost) {
    post.forEach((v, i) => (v === 0 ? masked : kept).push(`${path}#${i}`));
  }
  return { masked, kept };
}

function scoreOf(step: StepTrace, id: string): number {
  const [path, i] = id.split('#') as [string, string];
  return step.scores.get(path)![Number(i)]!;
}

/** AdaLoRA's laws for `def` (adalora's definition, or one spread from it: a test's broken variant). Each draws its own schedules. */
export function adaloraLaws(def: MethodDefinition): Law[] {
  const withComposed = async (
    c: ScheduleCase,
    tally: LawTally,
    body: (s: Subject) => Promise<void> | void,
  ): Promise<void> => {
    const s = Subject.create(def, c.shape, configOf(c), tally);
    try {
      s.compose(tally);
      if (!isRankBudgetMethod(s.method) || !s.method.afterStep) violation(`'${def.id}' has no budgetAt(step)/afterStep: not a rank-allocating method`);
      await body(s);
    } finally {
      s.dispose();
    }
  };
  const law = (name: string, cases: fc.Arbitrary<ScheduleCase>, body: (c: ScheduleCase, tally: LawTally) => Promise<void>): Law => ({
    name,
    run: (params: LawParams) => checkLaw(cases, body, params),
  });
  const any = scheduleCases();

  return [
    law('budget: within [target, total], never increasing, equal to the cubic schedule', any, (c, tally) =>
      withComposed(c, tally, (s) => {
        const m = s.method as unknown as RankBudgetMethod;
        const n = layerPaths(s).length;
        const total = c.init_r * n;
        const target = c.target_r * n;
        let prev = Infinity;
        for (let t = 1; t <= c.total_step + 2; t++) {
          const b = m.budgetAt(t);
          const want = referenceBudget(c, total, target, t).budget;
          if (b !== want) violation(`budgetAt(${t}) = ${b}, the schedule gives ${want}`);
          if (b < target || b > total) violation(`budgetAt(${t}) = ${b} outside [${target}, ${total}]`);
          if (b > prev) violation(`budget increased from ${prev} to ${b} at step ${t}`);
          prev = b;
        }
        tally.ran++;
      }),
    ),

    law('after a mask step the kept triplets number exactly the budget (distinct scores); other steps mask nothing', any, (c, tally) =>
      withComposed(c, tally, (s) => {
        const { trace } = runProtocol(s, c);
        for (const step of trace) {
          const count = [...step.ePost.values()].reduce((n, e) => n + e.filter((v) => v !== 0).length, 0);
          const triplets = [...step.ePre.values()].reduce((n, e) => n + e.length, 0);
          if (!step.mask || step.budget >= triplets) {
            if (count !== triplets) violation(`step ${step.t} masked ${triplets - count} triplet(s) though it is not a pruning step (budget ${step.budget})`);
            continue;
          }
          const sorted = [...step.scores.values()].flat().sort((a, b) => a - b);
          const k = triplets - step.budget;
          const lo = sorted[k - 1]!;
          const hi = sorted[k]!;
          if (!(hi - lo > 1e-4 * Math.abs(hi))) continue; // near-tie at the threshold: the count is not determined
          if (count !== step.budget) violation(`step ${step.t}: ${count} triplets kept, budget ${step.budget}`);
        }
        tally.ran++;
      }),
    ),

    law('masked E entries are exactly 0; A and B are untouched by masking', any, (c, tally) =>
      withComposed(c, tally, (s) => {
        const { trace } = runProtocol(s, c);
        for (const step of trace) {
          if (!step.abUntouched) violation(`step ${step.t}: afterStep changed lora_A or lora_B`);
          for (const [path, post] of step.ePost) {
            const pre = step.ePre.get(path)!;
            post.forEach((v, i) => {
              if (!Object.is(v, pre[i]) && !Object.is(v, 0)) violation(`step ${step.t}: ${path}.lora_E[${i}] became ${v} (not exactly +0, nor unchanged)`);
            });
          }
        }
        tally.ran++;
      }),
    ),

    law('global order: a kept triplet never scores below a masked one (across layers)', any, (c, tally) =>
      withComposed(c, tally, (s) => {
        const { trace } = runProtocol(s, c);
        for (const step of trace) {
          const { masked, kept } = maskedAndKept(step);
          if (masked.length === 0 || kept.length === 0) continue;
          const worstKept = kept.reduce((a, b) => (scoreOf(step, a) <= scoreOf(step, b) ? a : b));
          const bestMasked = masked.reduce((a, b) => (scoreOf(step, a) >= scoreOf(step, b) ? a : b));
          const sk = scoreOf(step, worstKept);
          const sm = scoreOf(step, bestMasked);
          if (sm > sk * (1 + 1e-4) + 1e-30) violation(`step ${step.t}: ${worstKept} (score ${sk}) kept while ${bestMasked} (score ${sm}) masked`);
        }
        tally.ran++;
      }),
    ),

    law('the pattern never changes after total_step - final_warmup', any, (c, tally) =>
      withComposed(c, tally, (s) => {
        const { trace } = runProtocol(s, c, c.total_step + 2);
        let first: string | undefined;
        for (const step of trace) {
          if (step.t < c.total_step - c.final_warmup || !step.mask) continue;
          const pattern = maskedAndKept(step).masked.join(',');
          if (first === undefined) first = pattern;
          else if (pattern !== first) violation(`step ${step.t} masked [${pattern}], earlier final steps [${first}]`);
        }
        tally.ran++;
      }),
    ),

    law('nothing crashes and nothing is masked when nothing needs pruning (target_r = init_r)', scheduleCases({ equalRanks: true }), (c, tally) =>
      withComposed(c, tally, (s) => {
        const { trace } = runProtocol(s, c, c.total_step + 1);
        for (const step of trace) {
          for (const [path, post] of step.ePost) {
            if (!post.every((v, i) => Object.is(v, step.ePre.get(path)![i]))) violation(`step ${step.t} changed ${path}.lora_E`);
          }
        }
        tally.ran++;
      }),
    ),

    law('regulariser: >= 0, and exactly 0 (with finite gradients) for orthonormal factors', any, (c, tally) =>
      withComposed(c, tally, (s) => {
        const reg = s.method.regulariser;
        if (!reg) violation(`'${def.id}' has no regulariser`);
        const params = new Map(s.model.namedParameters());
        const paths = layerPaths(s);
        const r1 = reg.call(s.method, s.model);
        const v1 = r1.dataSync()[0]!;
        r1.dispose();
        if (!(v1 >= 0)) violation(`regulariser is ${v1} on random factors`);
        // A: rows are signed unit vectors on distinct coordinates; B: columns likewise.
        paths.forEach((path, li) => {
          for (const name of ['lora_A', 'lora_B'] as const) {
            const p = params.get(`${path}.${name}`)!;
            const [rows, cols] = p.shape as [number, number];
            const data = new Float32Array(rows * cols);
            const r = name === 'lora_A' ? rows : cols;
            const len = name === 'lora_A' ? cols : rows;
            const offset = (c.shape.seed + li) % Math.max(1, len - r + 1);
            for (let i = 0; i < r; i++) {
              const sign = (c.shape.seed >> i) & 1 ? -1 : 1;
              const at = offset + i;
              if (name === 'lora_A') data[i * cols + at] = sign;
              else data[at * cols + i] = sign;
            }
            tf.tidy(() => p.assign(tf.tensor2d(data, [rows, cols])));
          }
        });
        const vars = paths.flatMap((p) => [params.get(`${p}.lora_A`)!.variable, params.get(`${p}.lora_B`)!.variable]);
        const { value, grads } = valueAndGrads(() => reg.call(s.method, s.model), vars);
        const v0 = value.dataSync()[0]!;
        const finite = grads.every((g) => g.dataSync().every(Number.isFinite));
        value.dispose();
        grads.forEach((g) => g.dispose());
        if (v0 !== 0) violation(`regulariser is ${v0} for orthonormal factors`);
        if (!finite) violation('regulariser gradient is not finite at orthonormal factors');
        tally.ran++;
      }),
    ),

    law('a pruned adapter saves its rank pattern and loads to the same outputs, bit for bit', scheduleCases({ minFinalWarmup: 1 }), (c, tally) =>
      withComposed(c, tally, async (s) => {
        const { trace } = runProtocol(s, c);
        const last = trace[trace.length - 1]!;
        const dir = mkdtempSync(join(tmpdir(), 'peftjs-law-'));
        try {
          await saveAdapter(dir, s.peft!);
          const saved = readAdapterConfig(dir);
          const pattern = saved.state.rank_pattern as Record<string, boolean[]> | null | undefined;
          const pruned = [...last.ePost.values()].some((e) => e.some((v) => v === 0));
          if (pruned && !pattern) violation('a pruned model saved no rank_pattern');
          const y = s.forward();
          const s2 = Subject.create(def, c.shape, configOf(c), tally);
          try {
            s2.compose(tally);
            loadAdapter(dir, s2.peft!);
            for (const [path, post] of last.ePost) {
              const kept = post.filter((v) => v !== 0).length;
              const shape = s2.model.getModule(path).param('lora_E').shape[0];
              if (shape !== kept) violation(`${path}: ${kept} triplets kept but the loaded layer has rank ${shape}`);
            }
            const y2 = s2.forward();
            try {
              if (!sameValues(y, y2)) violation(`the loaded pruned adapter's output differs by ${maxAbsDiff(y, y2)}`);
            } finally {
              y2.dispose();
            }
          } finally {
            y.dispose();
            s2.dispose();
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        tally.ran++;
      }),
    ),
  ];
}
