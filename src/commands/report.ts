import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { PeftError } from '../core/errors.js';
import { tableCells, TABLE_COLUMNS, writeReport } from '../app/report/index.js';
import { join } from 'node:path';

export default class Report extends BaseCommand {
  static override summary = 'Write the results page (HTML, PNG charts, markdown table) over training runs.';
  static override description =
    'Reads each run directory (run.json, log.jsonl, summary.json, as `peft train` writes them) and writes OUT/index.html with the results table (Baseline | Backbone | mode | DICE | mIoU | Memory, trainable parameters, time) and the loss and Dice curves, OUT/loss.png and OUT/dice.png (and SVGs), and the table as OUT/results.json and OUT/results.md. A run without summary.json is shown as incomplete. An existing OUT is only written into if it holds a previous report, is empty, or --force is given.';
  static override examples = ['<%= config.bin %> report runs/lora runs/adapter runs/adalora', '<%= config.bin %> report runs/* --out docs/report'];
  static override usage = 'report DIR... [--out DIR] [--force]';
  static override strict = false;
  static override args = {
    dirs: Args.string({ description: 'training run directories (each holds run.json), any number', required: false }),
  };
  static override flags = {
    out: Flags.string({ char: 'o', description: 'output directory', default: 'report' }),
    force: Flags.boolean({ description: 'write into an existing directory that holds no previous report' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Report);
    const dirs = argv as string[];
    if (dirs.length === 0) throw new PeftError('give at least one training run directory: peft report DIR... [--out DIR]');
    const r = await writeReport(dirs, { out: flags.out, force: flags.force, plugins: await this.registry() });
    this.log(formatTable([...TABLE_COLUMNS, 'status'], r.rows.map((row) => [...tableCells(row), row.status])));
    this.log(`\nwrote ${join(r.out, 'index.html')} (${r.files.length} files in ${r.out})`);
  }
}
