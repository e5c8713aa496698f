import { Flags } from '@oclif/core';
import { pathFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { exportRun, type ExportFormat } from '../app/runs/merge-run.js';

export default class Export extends BaseCommand {
  static override summary = "Write a trained run's adapter: peftjs adapter files, or a Hugging Face PEFT adapter that Python's PeftModel.from_pretrained loads.";
  static override description =
    "hf-peft works for every method with a Hugging Face PEFT codec (the built-in low-rank methods, and plugins that declare one): it writes adapter_config.json (peft_type, target_modules, the method's keys) and adapter_model.safetensors with keys base_model.model.<module>.<tensor>; a trained mask decoder goes in modules_to_save, trained biases as <module>.base_layer.bias. base_model_name_or_path is --base-model (a model id) or null, never the run's local --checkpoint file (see docs/checkpoints.md).";
  static override examples = [
    '<%= config.bin %> export --run runs/mobile_sam-tiny-lora --format hf-peft --out adapters/lora-hf',
    '<%= config.bin %> export --run runs/x --format peftjs --checkpoint last --out adapters/x',
  ];
  static override flags = {
    run: pathFlag({ description: 'run directory (written by peft train)', required: true }),
    checkpoint: pathFlag({ description: "'best' (default), 'last', or a checkpoint directory" }),
    format: Flags.string({ description: 'adapter format', options: ['peftjs', 'hf-peft'], default: 'hf-peft' }),
    'base-model': Flags.string({ description: 'hf-peft: base_model_name_or_path, a Hugging Face model id (org/name; default: null, never the local --checkpoint file)' }),
    out: pathFlag({ char: 'o', description: 'the adapter folder to write', required: true }),
    force: Flags.boolean({ description: 'write into --out even if it is not empty' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Export);
    await this.backend(flags.backend);
    const r = await exportRun(await this.registry(), flags.run, { checkpoint: flags.checkpoint, format: flags.format as ExportFormat, baseModel: flags['base-model'], out: flags.out, force: flags.force });
    this.log(`exported ${r.checkpoint} as ${flags.format}: ${r.tensors.length} tensors`);
    for (const f of r.files) this.log(`wrote ${f}`);
  }
}
