import { Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { exportRun, type ExportFormat } from '../app/runs/merge-run.js';

export default class Export extends BaseCommand {
  static override summary = "Write a trained run's adapter: peftjs adapter files, or a Hugging Face PEFT adapter (LoRA, AdaLoRA) that Python's PeftModel.from_pretrained loads.";
  static override description =
    'hf-peft writes adapter_config.json (peft_type, r, lora_alpha, target_modules, ...) and adapter_model.safetensors with keys base_model.model.<module>.lora_A.weight / .lora_B.weight (AdaLoRA: lora_A, lora_E, lora_B and its rank_pattern); a trained mask decoder goes in modules_to_save. Grouped q/v LoRA is written as an exactly equivalent rank r*k LoRA of the fused qkv (see docs/checkpoints.md).';
  static override examples = [
    '<%= config.bin %> export --run runs/mobile_sam-tiny-lora --format hf-peft --out adapters/lora-hf',
    '<%= config.bin %> export --run runs/x --format peftjs --checkpoint last --out adapters/x',
  ];
  static override flags = {
    run: Flags.string({ description: 'run directory (written by peft train)', required: true }),
    checkpoint: Flags.string({ description: "'best' (default), 'last', or a checkpoint directory" }),
    format: Flags.string({ description: 'adapter format', options: ['peftjs', 'hf-peft'], default: 'hf-peft' }),
    out: Flags.string({ char: 'o', description: 'the adapter folder to write', required: true }),
    force: Flags.boolean({ description: 'write into --out even if it is not empty' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Export);
    await this.backend(flags.backend);
    const r = await exportRun(await this.registry(), flags.run, { checkpoint: flags.checkpoint, format: flags.format as ExportFormat, out: flags.out, force: flags.force });
    this.log(`exported ${r.checkpoint} as ${flags.format}: ${r.tensors.length} tensors`);
    for (const f of r.files) this.log(`wrote ${f}`);
  }
}
