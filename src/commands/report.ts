import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { PeftError } from '../core/errors.js';
import { tableCells, TABLE_COLUMNS, writeReport } from '../app/report/index.js';
import { join } from 'node:path';

export default class Report extends BaseCommand {
  static override summary = 'Write the results page (HTML, PNG charts, markdown table, pictures of predictions) over training runs.';
  static override description =
    "Reads each run directory (run.json, log.jsonl, summary.json, as `peft train` writes them) and writes OUT/index.html with the results table (Baseline | Backbone | mode | DICE | mIoU | Memory, trainable parameters, time) and the loss and Dice curves, OUT/loss.png and OUT/dice.png (and SVGs), and the table as OUT/results.json and OUT/results.md. A run without summary.json is shown as incomplete.\n\nPredictions: each run's model is rebuilt from its best checkpoint (else its last) and re-evaluated as `peft eval` does, with the same prompts for every run; the page shows the same --samples validation images (spread evenly over the split) for every run side by side — image and prompt, ground truth, each run's prediction with its Dice — and each run's --worst images (lowest Dice; this scores the whole validation split once per run). The pictures are PNGs in OUT/pictures/. A run that cannot be re-evaluated (no checkpoint, its plugin not loaded, its data gone) is one line in the page and a warning. --samples 0 skips the section and its cost.\n\nAn existing OUT is only written into if it holds a previous report, is empty, or --force is given.";
  static override examples = ['<%= config.bin %> report runs/lora runs/adapter runs/adalora', '<%= config.bin %> report runs/* --out docs/report', '<%= config.bin %> report runs/* --samples 8 --worst 5', '<%= config.bin %> report runs/* --samples 0'];
  static override usage = 'report DIR... [--out DIR] [--force] [--samples K] [--worst N]';
  static override strict = false;
  static override args = {
    dirs: Args.string({ description: 'training run directories (each holds run.json), any number', required: false }),
  };
  static override flags = {
    out: Flags.string({ char: 'o', description: 'output directory', default: 'report' }),
    force: Flags.boolean({ description: 'write into an existing directory that holds no previous report' }),
    samples: Flags.integer({ description: 'validation images shown for every run side by side (0: no Predictions section, no re-evaluation)', default: 4 }),
    worst: Flags.integer({ description: "each run's worst images (lowest Dice) shown; above 0 each run scores its whole validation split", default: 3 }),
    checkpoint: Flags.string({ description: 'checkpoint the pictures come from: best (else last), or last', options: ['best', 'last'], default: 'best' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Report);
    const dirs = argv as string[];
    if (dirs.length === 0) throw new PeftError('give at least one training run directory: peft report DIR... [--out DIR]');
    const registry = await this.registry();
    if (flags.samples > 0) await this.backend(flags.backend);
    const r = await writeReport(dirs, {
      out: flags.out,
      force: flags.force,
      plugins: registry,
      gallery: { registry, samples: flags.samples, worst: flags.worst, checkpoint: flags.checkpoint as 'best' | 'last', warn: (line) => this.warnLine(line) },
    });
    this.log(formatTable([...TABLE_COLUMNS, 'status'], r.rows.map((row) => [...tableCells(row), row.status])));
    if (r.gallery) {
      const n = r.gallery.groups.reduce((a, g) => a + g.runs.length, 0);
      this.log(`\npredictions: ${n} of ${r.rows.length} run${r.rows.length === 1 ? '' : 's'} re-evaluated in ${r.gallery.seconds.toFixed(1)} s`);
    }
    this.log(`\nwrote ${join(r.out, 'index.html')} (${r.files.length} files in ${r.out})`);
  }
}
