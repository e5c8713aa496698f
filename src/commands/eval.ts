import { Flags } from '@oclif/core';
import { FLAG_LIMITS, integerFlag, pathFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { evaluateRun } from '../app/runs/evaluate-run.js';

export default class Eval extends BaseCommand {
  static override summary = 'Evaluate a trained run: Dice and IoU per class on its validation data.';
  static override examples = ['<%= config.bin %> eval --run runs/mobile_sam-tiny-lora', '<%= config.bin %> eval --run runs/x --checkpoint last --data-path data/REFUGE'];
  static override flags = {
    run: pathFlag({ description: 'run directory (written by peft train)', required: true }),
    checkpoint: pathFlag({ description: "'best' (default), 'last', or a checkpoint directory" }),
    adapter: pathFlag({ description: 'score this adapter folder (peftjs, or Hugging Face PEFT LoRA/AdaLoRA) on the run\'s model instead of a checkpoint' }),
    'data-path': pathFlag({ description: 'score this dataset instead of the run\'s validation split', aliases: ['data_path'] }),
    batch: integerFlag(FLAG_LIMITS.batch)({ char: 'b', description: `batch size (1 to ${FLAG_LIMITS.batch.max}; default: the run's)` }),
    json: Flags.boolean({ description: 'print the result as JSON' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Eval);
    await this.backend(flags.backend);
    const registry = await this.registry();
    const { spec, result, checkpoint } = await evaluateRun(registry, flags.run, { checkpoint: flags.checkpoint, adapter: flags.adapter, dataPath: flags['data-path'], batch: flags.batch });
    if (flags.json) {
      this.log(JSON.stringify({ checkpoint, ...result }, null, 2));
      return;
    }
    const classes = Object.keys(result.dice);
    const mean = (r: Record<string, number>) => classes.reduce((a, c) => a + r[c]!, 0) / classes.length;
    const f = (v: number) => v.toFixed(4);
    const rows = classes.map((c) => [c, f(result.dice[c]!), f(result.iou[c]!), f(result.dice05[c]!), f(result.iou05[c]!)]);
    rows.push(['mean', f(mean(result.dice)), f(mean(result.iou)), f(mean(result.dice05)), f(mean(result.iou05))]);
    this.log(`${spec.backbone.id} (${spec.backbone.preset}) + ${spec.method.id}, checkpoint ${checkpoint}, ${result.count} images`);
    this.log(formatTable(['class', 'Dice', 'IoU', 'Dice@0.5', 'IoU@0.5'], rows));
  }
}
