// `peft plan` as a library call: compose the backbone and method a training
// run would use (the same default preset, flag bindings and run binding as
// `trainRun`), report what would train, and dispose the model.
import { checkMethodFits } from '../../core/peft/method-fits.js';
import { compose, type PeftModel } from '../../core/peft/compose.js';
import type { Registry } from '../../core/registry/registry.js';
import { PeftError } from '../../core/errors.js';
import type { TrainOptions } from '../train/loop.js';
import { defaultTrainingSetSize, describeRunLength, methodConfigForRun, trainingPreset, type MethodRequest, type RunLengthInfo } from './run-request.js';
import { resolveRecipe, type ResolvedRecipe } from './recipe.js';
import { checkBackboneOverrides } from './run-folder-schema.js';

export interface PlanRequest {
  backbone: { id: string; preset?: string; overrides?: Record<string, unknown> };
  method: MethodRequest;
  trainDecoder: boolean;
  /** The run's batch, epochs and steps (as `peft train` takes them; unset: the recipe's); epochs count over the embedded dataset. */
  run: Pick<TrainOptions, 'batch' | 'epochs' | 'steps'>;
  /** Whether the run would start from official weights (`--checkpoint`): it selects the recipe. */
  fromCheckpoint?: boolean;
}

export interface Plan {
  backbone: { id: string; preset: string; imageSize: number };
  method: { id: string; config: Record<string, unknown>; /** keys the run's length set */ bound: Record<string, unknown> };
  run: RunLengthInfo;
  /** The recipe the run would get (as `peft train` resolves it) and the settings it resolves to. */
  recipe: ResolvedRecipe;
  /** The method's own account of its schedule over the run (`describeSchedule`), if it has one. */
  schedule: string[];
  report: ReturnType<PeftModel['report']>;
  /** The method's parameters at each of `report.sites`, in order. */
  siteParameters: number[];
}

/** What `peft train` with the same flags would build and how long it would run, without data or training. */
export function planRun(registry: Registry, request: PlanRequest): Plan {
  const { run } = request;
  if (!(Number.isSafeInteger(run.batch) && run.batch >= 1)) throw new PeftError(`--batch must be at least 1, got ${run.batch}`);
  for (const [flag, v] of [['--epochs', run.epochs], ['--steps', run.steps]] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw new PeftError(`${flag} must be at least 1, got ${v}`);
  }
  const backboneDef = registry.backbone(request.backbone.id);
  const preset = trainingPreset(backboneDef, request.backbone.preset);
  const methodDef = registry.method(request.method.id);
  const recipe = resolveRecipe(backboneDef, request.fromCheckpoint ?? false, { steps: run.steps, epochs: run.epochs });
  const fromRecipe = run.steps === undefined && run.epochs === undefined && recipe.options.steps !== undefined;
  const length = describeRunLength({ batch: run.batch, ...recipe.options }, defaultTrainingSetSize(), 'the default dataset', fromRecipe ? `${recipe.recipe.source} from-scratch recipe` : undefined);
  const { config, bound } = methodConfigForRun(methodDef, request.method, length.totalSteps);
  const method = registry.createMethod(methodDef.id, config);
  checkBackboneOverrides(backboneDef, request.backbone.overrides ?? {});
  const backbone = registry.createBackbone(backboneDef.id, preset, request.backbone.overrides ?? {});
  try {
    const sites = method.select(backbone.sites());
    checkMethodFits(method, sites, methodDef);
    const schedule = methodDef.describeSchedule?.(method.config, { sites, totalSteps: length.totalSteps }) ?? [];
    const peft = compose(backbone, method, { trainDecoder: request.trainDecoder });
    const report = peft.report();
    return {
      backbone: { id: backboneDef.id, preset, imageSize: backbone.imageSize },
      method: { id: methodDef.id, config: method.config as Record<string, unknown>, bound },
      run: length,
      recipe,
      schedule,
      report,
      siteParameters: report.sites.map((s) => method.parameterCount(s)),
    };
  } finally {
    backbone.model.dispose();
  }
}
