import { Flags } from '@oclif/core';
import { pathFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { backboneFlags, backboneOverrides, methodFlags, methodFlagValues, runLengthFlags } from '../cli/model-flags.js';
import { planRun } from '../app/runs/plan-run.js';
import { describeRecipe } from '../app/runs/recipe.js';

export default class Plan extends BaseCommand {
  static override summary = 'Compose a backbone with a PEFT method and show what would train, and the method\'s schedule over the run, without training.';
  static override description =
    "Resolves the flags as `peft train` does (the same default preset, and the run length from --steps, or --epochs of the embedded dataset at --batch, else the recipe's: the backbone's from-scratch recipe, or the reference's one epoch with --checkpoint), so a method whose schedule follows the run (AdaLoRA) shows the schedule that run would get.";
  static override examples = [
    '<%= config.bin %> plan --backbone mobile_sam --preset tiny --method lora --rank 4',
    '<%= config.bin %> plan --method adalora --steps 200',
    '<%= config.bin %> plan --net sam --encoder vit_b --mod adapter --mid-dim 32 --json',
  ];
  static override flags = {
    ...backboneFlags,
    ...methodFlags,
    ...runLengthFlags,
    'freeze-decoder': Flags.boolean({ description: 'do not train the mask decoder' }),
    checkpoint: pathFlag({ description: 'the official weights the run would start from (not read): selects the recipe for pretrained weights, as in peft train', aliases: ['sam-ckpt', 'sam_ckpt'] }),
    sites: Flags.boolean({ description: 'list every adapted site' }),
    json: Flags.boolean({ description: 'print the report as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Plan);
    await this.backend(flags.backend);
    const registry = await this.registry();
    const plan = planRun(registry, {
      backbone: { id: flags.backbone, preset: flags.preset, overrides: backboneOverrides(registry.backbone(flags.backbone), flags) },
      method: { id: flags.method, flags: methodFlagValues(flags) },
      trainDecoder: !flags['freeze-decoder'],
      run: { batch: flags.batch, epochs: flags.epochs, steps: flags.steps },
      fromCheckpoint: flags.checkpoint !== undefined,
    });
    const r = plan.report;
    this.warnUndeclaredTrainable(r);
    if (flags.json) {
      const sites = r.sites.map((s, i) => ({ ...s, parameters: plan.siteParameters[i] }));
      this.log(JSON.stringify({ ...r, methodConfig: plan.method.config, boundByRun: plan.method.bound, run: plan.run, recipe: { ...plan.recipe.recipe, resolved: plan.recipe.options }, schedule: plan.schedule, sites }, null, 2));
      return;
    }
    const pct = (n: number) => `${((100 * n) / r.totalParameters).toFixed(3)}%`;
    const lines = [
      `${r.backbone} (${r.preset}, ${plan.backbone.imageSize} px) + ${r.method} ${JSON.stringify(plan.method.config)}`,
      `adapted sites:        ${r.sites.length} (${[...new Set(r.sites.map((s) => s.role))].join(', ')})`,
      `method parameters:    ${r.methodParameters.toLocaleString('en')} (${pct(r.methodParameters)})`,
      `trainable parameters: ${r.trainableParameters.toLocaleString('en')} (${pct(r.trainableParameters)})${flags['freeze-decoder'] ? '' : ', with the mask decoder'}`,
      `total parameters:     ${r.totalParameters.toLocaleString('en')}`,
      `training memory:      ~${(r.estimatedTrainingBytes / 2 ** 20).toFixed(1)} MiB of weights, gradients and Adam state (activations extra)`,
      `run:                  ${plan.run.totalSteps} steps (${plan.run.from})`,
      describeRecipe(plan.recipe),
    ];
    const bound = Object.entries(plan.method.bound);
    if (bound.length) lines.push(`set by the run length: ${bound.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`);
    for (const line of plan.schedule) lines.push(`schedule:             ${line}`);
    if (flags.sites) {
      lines.push('', formatTable(['site', 'role', 'parameters'], r.sites.map((s, i) => [s.path, s.role, String(plan.siteParameters[i])])));
    }
    this.log(lines.join('\n'));
  }
}
