// The main job as a library call: build the model from a RunSpec, open the
// data, train, and write run.json, log.jsonl, checkpoints and summary.json
// into the run directory.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { backendReport } from '../backend.js';
import { PeftError, errorReason } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import type { InjectionSite } from '../../core/peft/injection-site.js';
import { checkMethodFits } from '../../core/peft/method-fits.js';
import type { Registry } from '../../core/registry/registry.js';
import { buildPeftModel, openDatasets, readRunSpec, RUN_FILE, writeRunSpec, type RunSpec } from './run-spec.js';
import { trainLoop, validateTrainOptions, type TrainCallbacks, type TrainSummary } from '../train/loop.js';
import { makeDir } from '../../core/io/make-dir.js';

export { checkMethodFits, MAX_ADAPTER_TO_LAYER } from '../../core/peft/method-fits.js';

export const SUMMARY_FILE = 'summary.json';

export interface RunSummaryFile extends Omit<TrainSummary, 'final'> {
  final: { dice: Record<string, number>; iou: Record<string, number>; dice05: Record<string, number>; iou05: Record<string, number> } | null;
  methodParameters: number;
  trainableParameters: number;
  totalParameters: number;
  backend: string;
}

/** The registry, but every method it creates checks `checkMethodFits` on the sites it selects. */
function fittingRegistry(registry: Registry): Registry {
  return new Proxy(registry, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop === 'createMethod') {
        return (...args: Parameters<Registry['createMethod']>) => {
          const method = target.createMethod(...args);
          const select = method.select.bind(method);
          method.select = (sites: InjectionSite[]) => {
            const chosen = select(sites);
            checkMethodFits(method, chosen);
            return chosen;
          };
          return method;
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Refuses to train into a directory that holds anything but a previous run of the same spec. */
function prepareRunDir(dir: string, resume: boolean): void {
  if (resume) {
    if (!existsSync(join(dir, RUN_FILE))) throw new PeftError(`${dir}: nothing to resume (no ${RUN_FILE})`);
    return;
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new PeftError(`${dir} already exists and is not empty: choose another --exp-name, or --resume it`);
  }
  try {
    makeDir(dir);
  } catch (err) {
    throw new PeftError(`${dir}: cannot create the run folder (${errorReason(err)})`);
  }
}

export async function trainRun(
  registry: Registry,
  spec: RunSpec,
  runDir: string,
  callbacks: TrainCallbacks & { onReady?(info: { spec: RunSpec; report: ReturnType<import('../../core/peft/compose.js').PeftModel['report']>; trainSize: number; valSize: number; dataRoot: string }): void } = {},
  resume = false,
): Promise<RunSummaryFile> {
  if (!resume) {
    validateTrainOptions(spec.options);
    if (spec.dataset.valPath && spec.dataset.kind !== 'isic') throw new PeftError(`--val-path is for --dataset isic; --dataset ${spec.dataset.kind} finds its validation split itself`);
  }
  prepareRunDir(runDir, resume);
  const effective = resume ? readRunSpec(runDir) : spec;
  const peft = buildPeftModel(fittingRegistry(registry), effective);
  try {
    const data = await openDatasets(effective);
    if (!resume) writeRunSpec(runDir, effective);
    const report = peft.report();
    callbacks.onReady?.({ spec: effective, report, trainSize: data.train.length, valSize: data.val.length, dataRoot: data.root });
    const summary = await trainLoop(peft, data, effective.options, runDir, callbacks, resume);
    const out: RunSummaryFile = {
      ...summary,
      final: summary.final ? { dice: summary.final.dice, iou: summary.final.iou, dice05: summary.final.dice05, iou05: summary.final.iou05 } : null,
      methodParameters: report.methodParameters,
      trainableParameters: report.trainableParameters,
      totalParameters: report.totalParameters,
      backend: backendReport()?.active ?? 'unknown',
    };
    if (!summary.stoppedEarly) writeFileAtomic(join(runDir, SUMMARY_FILE), `${JSON.stringify(out, null, 2)}\n`);
    return out;
  } finally {
    peft.dispose();
  }
}
