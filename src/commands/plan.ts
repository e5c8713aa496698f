import { Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { backboneFlags, backboneOverrides, methodConfigFromFlags, methodFlags } from '../cli/model-flags.js';
import { compose } from '../core/peft/compose.js';
import { checkMethodFits } from '../core/peft/method-fits.js';

export default class Plan extends BaseCommand {
  static override summary = 'Compose a backbone with a PEFT method and show what would train, without training.';
  static override examples = [
    '<%= config.bin %> plan --backbone mobile_sam --preset tiny --method lora --rank 4',
    '<%= config.bin %> plan --net sam --encoder vit_b --mod adapter --mid-dim 32 --json',
  ];
  static override flags = {
    ...backboneFlags,
    ...methodFlags,
    'freeze-decoder': Flags.boolean({ description: 'do not train the mask decoder' }),
    sites: Flags.boolean({ description: 'list every adapted site' }),
    json: Flags.boolean({ description: 'print the report as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Plan);
    await this.backend(flags.backend);
    const registry = await this.registry();
    const methodDef = registry.method(flags.method);
    const method = registry.createMethod(methodDef.id, methodConfigFromFlags(methodDef, flags));
    const backbone = registry.createBackbone(flags.backbone, flags.preset, backboneOverrides(flags));
    try {
      checkMethodFits(method, method.select(backbone.sites()));
      const peft = compose(backbone, method, { trainDecoder: !flags['freeze-decoder'] });
      const r = peft.report();
      if (flags.json) {
        this.log(JSON.stringify({ ...r, methodConfig: method.config, sites: r.sites.map((s) => ({ ...s, parameters: method.parameterCount(s) })) }, null, 2));
        return;
      }
      const pct = (n: number) => `${((100 * n) / r.totalParameters).toFixed(3)}%`;
      const lines = [
        `${r.backbone} (${r.preset}, ${backbone.imageSize} px) + ${r.method} ${JSON.stringify(method.config)}`,
        `adapted sites:        ${r.sites.length} (${[...new Set(r.sites.map((s) => s.role))].join(', ')})`,
        `method parameters:    ${r.methodParameters.toLocaleString('en')} (${pct(r.methodParameters)})`,
        `trainable parameters: ${r.trainableParameters.toLocaleString('en')} (${pct(r.trainableParameters)})${flags['freeze-decoder'] ? '' : ', with the mask decoder'}`,
        `total parameters:     ${r.totalParameters.toLocaleString('en')}`,
        `training memory:      ~${(r.estimatedTrainingBytes / 2 ** 20).toFixed(1)} MiB of weights, gradients and Adam state (activations extra)`,
      ];
      if (flags.sites) {
        lines.push('', formatTable(['site', 'role', 'parameters'], r.sites.map((s) => [s.path, s.role, String(method.parameterCount(s))])));
      }
      this.log(lines.join('\n'));
    } finally {
      backbone.model.dispose();
    }
  }
}
