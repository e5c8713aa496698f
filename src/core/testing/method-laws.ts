// The laws every PEFT method must satisfy, on random toy backbones and random
// configs (drawn from the method's schema unless given; the default config is
// always the first case):
//   identity at init (where the config promises it); after compose only the
//   method's own tensors (and the base tensors it declares) train, and none
//   copies a base tensor; a training step changes only the method's
//   parameters and leaks no tensor; merge then unmerge restores every weight
//   bit for bit; merged forward == unmerged forward; adapter save then load
//   reproduces outputs exactly; parameter counts equal the plan's (the
//   method's formula), naming the tensors that were not expected.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAdapter, saveAdapter } from '../io/adapter-files.js';
import type { MethodDefinition } from '../registry/definitions.js';
import { configArbitrary } from './config-arbitrary.js';
import { checkLaw, violation, type Law, type LawParams, type LawTally, type MethodLawOptions } from './law.js';
import { planMethod } from './plan.js';
import { baseTensors, declaredExtras, listTensors, trainableSetProblem, unexpectedTrainable } from './trainable-set.js';
import {
  Subject,
  changedTensors,
  maxAbs,
  maxAbsDiff,
  randomTensor,
  randomiseParameters,
  sameValues,
  snapshot,
  subSeed,
  toyShape,
  trainStep,
  type ToyShape,
} from './subject.js';

// The options live in law.ts, beside Law: definitions.ts needs their type, and
// this file imports definitions.ts (an import back would be a cycle).
export type { MethodLawOptions } from './law.js';

export interface LawCase {
  shape: ToyShape;
  config: Record<string, unknown>;
}

export function lawCases(def: MethodDefinition, options: MethodLawOptions = {}): fc.Arbitrary<LawCase> {
  const configs = options.config ? fc.constant(options.config) : (options.configs ?? configArbitrary(def.schema));
  return fc.record({ shape: toyShape, config: configs });
}

/** The toy of the default case: two blocks, wide enough for a rank of 8. */
export const DEFAULT_CASE_SHAPE: ToyShape = { seed: 1, depth: 2, dim: 8, hidden: 12, batch: 2, tokens: 3 };

/**
 * The cases every law checks before drawing: the method's default config
 * (`{}`, which registration has checked parses), unless the options fix one
 * config. A user who runs the method without `--set` gets exactly this.
 */
export function lawExamples(options: MethodLawOptions = {}): LawCase[] {
  return options.config ? [] : [{ shape: DEFAULT_CASE_SHAPE, config: {} }];
}

const defaultPromise = (c: Record<string, unknown>) => c.zero_init !== false && c.identity_at_init !== false;

/** Runs `body` on a fresh subject and always disposes it. */
async function withSubject(
  def: MethodDefinition,
  c: LawCase,
  tally: LawTally,
  body: (s: Subject) => Promise<void> | void,
): Promise<void> {
  const s = Subject.create(def, c.shape, c.config, tally);
  try {
    await body(s);
  } finally {
    s.dispose();
  }
}

export function methodLaws(def: MethodDefinition, options: MethodLawOptions = {}): Law[] {
  const cases = lawCases(def, options);
  const examples = lawExamples(options);
  const promises = options.promisesIdentity ?? defaultPromise;
  const mergeTol = options.mergeTolerance ?? 1e-4;
  const law = (name: string, body: (c: LawCase, tally: LawTally) => Promise<void>): Law => ({
    name,
    run: (params: LawParams) => checkLaw(cases, body, params, examples),
  });

  return [
    law('identity at init: the adapted model equals the base where the config promises it', (c, tally) =>
      withSubject(def, c, tally, (s) => {
        if (!promises(s.config)) return tally.notApplicable('the config does not promise identity at init (zero_init false)');
        const y0 = s.forward();
        s.compose(tally);
        const y1 = s.forward();
        try {
          const d = maxAbsDiff(y0, y1);
          if (!(d <= 1e-6 * (1 + maxAbs(y0)))) violation(`adapted output differs from the base's by ${d} at init`);
        } finally {
          y0.dispose();
          y1.dispose();
        }
        tally.ran++;
      }),
    ),

    law("compose: only the method's own tensors train, plus the base tensors it declares (trainableExtras); none copies a base tensor", (c, tally) =>
      withSubject(def, c, tally, (s) => {
        const base = baseTensors(s.model, snapshot(s.model));
        const peft = s.compose(tally);
        const problem = trainableSetProblem(peft, base, snapshot(s.model), false);
        if (problem) violation(problem);
        tally.ran++;
      }),
    ),

    law("training step: only the method's parameters change, frozen weights stay bit-exact, no tensor leaks", (c, tally) =>
      withSubject(def, c, tally, async (s) => {
        const peft = s.compose(tally);
        const methodKeys = new Set(peft.methodKeys);
        const params = new Map(s.model.namedParameters());
        for (const k of methodKeys) {
          const p = params.get(k);
          if (p && !p.trainable) violation(`method parameter '${k}' is not trainable`);
        }
        const trainable = new Set(s.model.trainableParameters().map(([k]) => k));
        if (trainable.size === 0) violation('the method made nothing trainable');
        const before = snapshot(s.model);
        const y = s.forward();
        const upstream = randomTensor(y.shape, subSeed(c.shape.seed, 2));
        y.dispose();
        try {
          trainStep(s, upstream, 1);
          const n0 = tf.memory().numTensors;
          trainStep(s, upstream, 2);
          const n1 = tf.memory().numTensors;
          if (n1 !== n0) violation(`a training step leaked ${n1 - n0} tensors`);
        } finally {
          upstream.dispose();
        }
        const after = snapshot(s.model);
        const frozen = changedTensors(before, after, (k) => !trainable.has(k) && !methodKeys.has(k));
        if (frozen.length) violation(`frozen tensor(s) changed in a training step: ${frozen.slice(0, 3).join(', ')}`);
        const moved = changedTensors(before, after, (k) => trainable.has(k));
        if (moved.length === 0) violation('no trainable parameter changed in a training step');
        tally.ran++;
      }),
    ),

    law('merge then unmerge restores every weight bit for bit', (c, tally) =>
      withSubject(def, c, tally, (s) => {
        if (!s.method.merge || !s.method.unmerge) return tally.notApplicable(`'${def.id}' declares no merge/unmerge`);
        const peft = s.compose(tally);
        randomiseParameters(s.model, peft.trainable().map(([k]) => k), subSeed(c.shape.seed, 3));
        const before = snapshot(s.model);
        s.method.merge(s.model);
        s.method.unmerge(s.model);
        const changed = changedTensors(before, snapshot(s.model));
        if (changed.length) violation(`merge then unmerge changed: ${changed.slice(0, 3).join(', ')}`);
        tally.ran++;
      }),
    ),

    law('merged forward equals unmerged forward', (c, tally) =>
      withSubject(def, c, tally, (s) => {
        if (!s.method.merge || !s.method.unmerge) return tally.notApplicable(`'${def.id}' declares no merge/unmerge`);
        const peft = s.compose(tally);
        randomiseParameters(s.model, peft.trainable().map(([k]) => k), subSeed(c.shape.seed, 3));
        const yu = s.forward();
        s.method.merge(s.model);
        const ym = s.forward();
        s.method.unmerge(s.model);
        const yu2 = s.forward();
        try {
          const d = maxAbsDiff(ym, yu);
          if (!(d <= mergeTol * (1 + maxAbs(yu)))) violation(`merged output differs from unmerged by ${d}`);
          if (!sameValues(yu, yu2)) violation(`the output after unmerge differs from before merge by ${maxAbsDiff(yu, yu2)}`);
        } finally {
          for (const t of [yu, ym, yu2]) t.dispose();
        }
        tally.ran++;
      }),
    ),

    law('adapter save then load reproduces outputs exactly', (c, tally) =>
      withSubject(def, c, tally, async (s) => {
        const peft = s.compose(tally);
        randomiseParameters(s.model, peft.trainable().map(([k]) => k), subSeed(c.shape.seed, 4));
        const dir = mkdtempSync(join(tmpdir(), 'peftjs-law-'));
        try {
          await saveAdapter(dir, peft);
          const y = s.forward();
          await withSubject(def, c, tally, (s2) => {
            const peft2 = s2.compose(tally);
            loadAdapter(dir, peft2);
            const y2 = s2.forward();
            try {
              if (!sameValues(y, y2)) violation(`the loaded adapter's output differs by ${maxAbsDiff(y, y2)}`);
            } finally {
              y.dispose();
              y2.dispose();
            }
          });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        tally.ran++;
      }),
    ),

    law("parameter counts equal the plan's (the method's formula)", (c, tally) =>
      withSubject(def, c, tally, (s) => {
        const plan = planMethod(s.toy.sites(), s.method);
        const peft = s.compose(tally);
        const params = new Map(s.model.namedParameters());
        const shapeOf = (k: string) => params.get(k)?.shape;
        // the method's parameters (new tensors by identity, buffers aside), by the site they sit under
        const added = peft.methodKeys.filter((k) => params.has(k));
        const paths = plan.sites.map((p) => p.path).sort((a, b) => b.length - a.length);
        const bySite = new Map<string, string[]>(plan.sites.map((p) => [p.path, []]));
        for (const k of added) {
          const owner = paths.find((path) => k.startsWith(`${path}.`));
          if (owner === undefined) violation(`parameter '${k}' [${shapeOf(k)!.join(',')}] was added outside every selected site`);
          bySite.get(owner)!.push(k);
        }
        for (const site of plan.sites) {
          const names = bySite.get(site.path)!;
          const got = names.reduce((n, k) => n + params.get(k)!.size, 0);
          if (got !== site.parameters) {
            const what = names.map((k) => `'${k}' [${shapeOf(k)!.join(',')}] (${params.get(k)!.size})`).join(', ');
            violation(`'${site.path}': the plan says ${site.parameters} parameters, inject added ${got}${what ? `: ${what}` : ''}`);
          }
        }
        const reported = peft.report().methodParameters;
        if (reported !== plan.parameters) violation(`the plan totals ${plan.parameters} parameters, compose reports ${reported}`);
        // what trains beyond the plan: base tensors the method did not declare
        const { extras } = declaredExtras(peft);
        const unexpected = unexpectedTrainable(peft, extras, false);
        if (unexpected.length) {
          const trainable = peft.trainable().reduce((n, [, p]) => n + p.size, 0);
          violation(`compose leaves ${trainable} parameters trainable, the plan says ${plan.parameters}: not expected ${listTensors(unexpected, shapeOf)}`);
        }
        tally.ran++;
      }),
    ),
  ];
}
