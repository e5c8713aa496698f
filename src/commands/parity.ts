import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { fixtureFiles, runFixture } from '../core/parity/run-parity.js';

export default class Parity extends BaseCommand {
  static override summary = 'Check every reference fixture in a directory against the PyTorch ground truth.';
  static override description =
    'Runs each NAME.json + NAME.safetensors fixture with the plugin that owns its kind and compares every output and gradient within the fixture\'s tolerance. Exits 1 if any fixture fails or has an unknown kind.';
  static override examples = ['<%= config.bin %> parity ../shared/fixtures', '<%= config.bin %> parity fixtures --only sam_block_lora'];
  static override args = {
    dir: Args.string({ description: 'directory of fixtures', required: true }),
  };
  static override flags = {
    only: Flags.string({ description: 'run only fixtures whose name contains this', multiple: true }),
    verbose: Flags.boolean({ char: 'v', description: 'print every compared tensor' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Parity);
    await this.backend(flags.backend);
    const registry = await this.registry();
    let files = fixtureFiles(args.dir);
    if (flags.only?.length) files = files.filter((f) => flags.only!.some((o) => f.includes(o)));
    const rows: string[][] = [];
    let failed = 0;
    for (const file of files) {
      const r = await runFixture(file, registry);
      if (!r.ok) failed++;
      const detail = r.error ?? r.checks.filter((c) => !c.ok).map((c) => `${c.key}${c.note ? ` (${c.note})` : ` max ${c.maxAbs.toExponential(2)}`}`).slice(0, 3).join(', ');
      rows.push([r.name, r.kind, Number.isFinite(r.maxAbs) ? r.maxAbs.toExponential(2) : '-', r.ok ? 'pass' : 'FAIL', `${Math.round(r.ms)} ms`, r.ok ? '' : detail]);
      if (flags.verbose) for (const c of r.checks) this.log(`  ${r.name} ${c.key} ${c.ok ? 'ok' : 'FAIL'} ${c.maxAbs.toExponential(2)}${c.note ? ` ${c.note}` : ''}`);
    }
    this.log(formatTable(['fixture', 'kind', 'max abs err', 'result', 'time', 'detail'], rows));
    this.log(`${files.length - failed} passed, ${failed} failed`);
    if (files.length === 0) this.log('no fixtures found');
    if (failed > 0 || files.length === 0) this.exit(1);
  }
}
