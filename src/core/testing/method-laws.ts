// The laws every PEFT method must satisfy, on random toy backbones and random
// configs (drawn from the method's schema unless given):
//   identity at init (where the config promises it); a training step changes
//   only the method's parameters and leaks no tensor; merge then unmerge
//   restores every weight bit for bit; merged forward == unmerged forward;
//   adapter save then load reproduces outputs exactly; parameter counts equal
//   the plan's (the method's formula).
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
  const promises = options.promisesIdentity ?? defaultPromise;
  const mergeTol = options.mergeTolerance ?? 1e-4;
  const law = (name: string, body: (c: LawCase, tally: LawTally) => Promise<void>): Law => ({
    name,
    run: (params: LawParams) => checkLaw(cases, body, params),
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
        const before = new Set(s.model.namedParameters().map(([k]) => k));
        const peft = s.compose(tally);
        const added = s.model.namedParameters().filter(([k]) => !before.has(k));
        const paths = plan.sites.map((p) => p.path).sort((a, b) => b.length - a.length);
        const bySite = new Map<string, number>(plan.sites.map((p) => [p.path, 0]));
        for (const [k, p] of added) {
          const owner = paths.find((path) => k.startsWith(`${path}.`));
          if (owner === undefined) violation(`parameter '${k}' was added outside every selected site`);
          bySite.set(owner, bySite.get(owner)! + p.size);
        }
        for (const site of plan.sites) {
          const got = bySite.get(site.path)!;
          if (got !== site.parameters) violation(`'${site.path}': the plan says ${site.parameters} parameters, inject added ${got}`);
        }
        const reported = peft.report().methodParameters;
        if (reported !== plan.parameters) violation(`the plan totals ${plan.parameters} parameters, compose reports ${reported}`);
        tally.ran++;
      }),
    ),
  ];
}
