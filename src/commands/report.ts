import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { FLAG_LIMITS, integerFlag, pathFlag } from '../cli/flag-values.js';
import { formatTable } from '../cli/table.js';
import { PeftError } from '../core/errors.js';
import { quoteName } from '../core/text.js';
import type { Registry } from '../core/registry/registry.js';
import { tableCells, TABLE_COLUMNS, writeReport, type GalleryOptions } from '../app/report/index.js';
import { isSweepFolder, sweepCells, sweepColumns, writeSweepReport } from '../app/report/sweep/index.js';
import { join } from 'node:path';

/** --worst when not given: 3 of each run; 0 for a sweep (its Predictions section shows one seed per group, the sample images only). */
const DEFAULT_WORST = { runs: 3, sweep: 0 };

export default class Report extends BaseCommand {
  static override summary = 'Write the results page (HTML, PNG charts, markdown table, pictures of predictions) over training runs, or over the seeds of a sweep.';
  static override description =
    "Reads each run directory (run.json, log.jsonl, summary.json, as `peft train` writes them) and writes OUT/index.html with the results table (Baseline | Backbone | mode | DICE | mIoU | Memory, trainable parameters, time) and the loss and Dice curves, OUT/loss.png and OUT/dice.png (and SVGs), and the table as OUT/results.json and OUT/results.md. A run without summary.json is shown as incomplete.\n\nPredictions: each run's model is rebuilt from its best checkpoint (else its last) and re-evaluated as `peft eval` does, with the same prompts for every run; the page shows the same --samples validation images (spread evenly over the split) for every run side by side — image and prompt, ground truth, each run's prediction with its Dice — and each run's --worst images (lowest Dice; this scores the whole validation split once per run). The pictures are PNGs in OUT/pictures/. A run that cannot be re-evaluated (no checkpoint, its plugin not loaded, its data gone) is one line in the page and a warning. --samples 0 skips the section and its cost.\n\nA sweep folder (made by `peft sweep`, it holds sweep.json) is reported over its seeds: one row per group (backbone x method x grid values) with each number as mean ± sample standard deviation over the group's finished seeds (hover a number in the page for each seed's value) and Dice per class; a group whose seeds are not all finished says \"2 of 3 seeds\" and is marked incomplete. The curves draw each group's mean over seeds with a band from its lowest to its highest seed; a paired comparison says, per backbone, which method wins in how many seeds and by how much. Predictions re-evaluate one run per group (its lowest finished seed), with --worst 0 unless given. Give one sweep folder, or run folders, not both.\n\nAn existing OUT is only written into if it holds a previous report, is empty, or --force is given.";
  static override examples = [
    '<%= config.bin %> report runs/lora runs/adapter runs/adalora',
    '<%= config.bin %> report runs/* --out docs/report',
    '<%= config.bin %> report runs/* --samples 8 --worst 5',
    '<%= config.bin %> report runs/* --samples 0',
    '<%= config.bin %> report sweeps/quality --out report-quality',
  ];
  static override usage = 'report DIR... | SWEEPDIR [--out DIR] [--force] [--samples K] [--worst N]';
  static override strict = false;
  static override args = {
    dirs: Args.string({ description: 'training run directories (each holds run.json), any number; or one sweep folder (holds sweep.json)', required: false }),
  };
  static override flags = {
    out: pathFlag({ char: 'o', description: 'output directory', default: 'report' }),
    force: Flags.boolean({ description: 'write into an existing directory that holds no previous report' }),
    samples: integerFlag(FLAG_LIMITS.count)({ description: 'validation images shown for every run side by side (0: no Predictions section, no re-evaluation)', default: 4 }),
    worst: integerFlag(FLAG_LIMITS.count)({ description: `each run's worst images (lowest Dice) shown; above 0 each run scores its whole validation split [default: ${DEFAULT_WORST.runs}, ${DEFAULT_WORST.sweep} for a sweep]` }),
    checkpoint: Flags.string({ description: 'checkpoint the pictures come from: best (else last), or last', options: ['best', 'last'], default: 'best' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Report);
    const dirs = argv as string[];
    if (dirs.length === 0) throw new PeftError('give at least one training run directory, or a sweep folder: peft report DIR... [--out DIR]');
    const sweeps = dirs.filter(isSweepFolder);
    if (sweeps.length > 0 && sweeps.length < dirs.length) {
      throw new PeftError(`${quoteName(sweeps[0])} is a sweep folder: give it alone, or only training run directories (a sweep's runs are reported over their seeds)`);
    }
    if (sweeps.length > 1) throw new PeftError(`give one sweep folder at a time (got ${sweeps.length}: ${sweeps.slice(0, 3).map((d) => quoteName(d)).join(', ')}${sweeps.length > 3 ? ', ...' : ''})`);
    const registry = await this.registry();
    if (flags.samples > 0) await this.backend(flags.backend);
    const gallery = (worst: number): GalleryOptions => ({ registry, samples: flags.samples, worst, checkpoint: flags.checkpoint as 'best' | 'last', warn: (line: string) => this.warnLine(line) });
    if (sweeps.length === 1) return this.sweepReport(sweeps[0]!, flags, registry, gallery(flags.worst ?? DEFAULT_WORST.sweep));
    const r = await writeReport(dirs, { out: flags.out, force: flags.force, plugins: registry, gallery: gallery(flags.worst ?? DEFAULT_WORST.runs) });
    this.log(formatTable([...TABLE_COLUMNS, 'status'], r.rows.map((row) => [...tableCells(row), row.status])));
    if (r.gallery) {
      const n = r.gallery.groups.reduce((a, g) => a + g.runs.length, 0);
      this.log(`\npredictions: ${n} of ${r.rows.length} run${r.rows.length === 1 ? '' : 's'} re-evaluated in ${r.gallery.seconds.toFixed(1)} s`);
    }
    this.log(`\nwrote ${join(r.out, 'index.html')} (${r.files.length} files in ${r.out})`);
  }

  private async sweepReport(dir: string, flags: { out: string; force: boolean }, registry: Registry, gallery: GalleryOptions): Promise<void> {
    const r = await writeSweepReport(dir, { out: flags.out, force: flags.force, plugins: registry, gallery, warn: (line) => this.warnLine(line) });
    this.log(formatTable(sweepColumns(r.rows), r.rows.map((row) => sweepCells(row, r.rows).map((c) => c.text))));
    const sentences = [...r.comparison.pairs.map((p) => p.sentence), ...r.comparison.winners.map((w) => w.sentence)];
    if (sentences.length) this.log(`\n${sentences.join('\n')}`);
    if (r.gallery) {
      const n = r.gallery.groups.reduce((a, g) => a + g.runs.length, 0);
      this.log(`\npredictions: ${n} of ${r.rows.length} group${r.rows.length === 1 ? '' : 's'} re-evaluated (one seed each) in ${r.gallery.seconds.toFixed(1)} s`);
    }
    this.log(`\nwrote ${join(r.out, 'index.html')} (${r.files.length} files in ${r.out})`);
  }
}
