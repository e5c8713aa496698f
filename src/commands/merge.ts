import { Flags } from '@oclif/core';
import { pathFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { mergeRun } from '../app/runs/merge-run.js';

export default class Merge extends BaseCommand {
  static override summary = "Fold a trained run's LoRA/AdaLoRA update into the base weights and write a plain checkpoint with the official key names.";
  static override description =
    'Rebuilds the run (run.json), loads a checkpoint, merges the method into the base weights and writes every tensor of the model except the method\'s own (no lora_*), trained mask decoder included, as one .safetensors file that the backbone (or the official PyTorch model) loads as it is. Methods that add modules (adapter) cannot be merged: use `peft export`.';
  static override examples = [
    '<%= config.bin %> merge --run runs/mobile_sam-tiny-lora --out mobile_sam_lora_merged.safetensors',
    '<%= config.bin %> merge --run runs/x --checkpoint last --out merged.safetensors --force',
  ];
  static override flags = {
    run: pathFlag({ description: 'run directory (written by peft train)', required: true }),
    checkpoint: pathFlag({ description: "'best' (default), 'last', or a checkpoint directory" }),
    out: pathFlag({ char: 'o', description: 'the merged checkpoint to write (.safetensors)', required: true }),
    force: Flags.boolean({ description: 'overwrite --out if it exists' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Merge);
    await this.backend(flags.backend);
    const r = await mergeRun(await this.registry(), flags.run, { checkpoint: flags.checkpoint, out: flags.out, force: flags.force });
    this.log(`merged ${r.method} from ${r.checkpoint}: ${r.tensors} tensors, ${r.parameters.toLocaleString('en')} values, official keys`);
    this.log(`wrote ${r.out}`);
  }
}
