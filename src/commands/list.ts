import { Args } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { describeConfig } from '../core/registry/config.js';
import { PeftError } from '../core/errors.js';

export default class List extends BaseCommand {
  static override summary = 'List the registered backbones and PEFT methods.';
  static override examples = ['<%= config.bin %> list', '<%= config.bin %> list methods'];
  static override args = {
    what: Args.string({ description: 'backbones or methods (default: both)', required: false }),
  };

  async run(): Promise<void> {
    const { args } = await this.parse(List);
    const what = args.what?.toLowerCase();
    if (what && !['backbones', 'backbone', 'methods', 'method'].includes(what)) {
      throw new PeftError(`unknown list '${args.what}': choose backbones or methods`);
    }
    const registry = await this.registry();
    const out: string[] = [];
    if (!what || what.startsWith('backbone')) {
      const rows = registry.backbones().map((b) => [
        b.id,
        b.summary,
        Object.keys(b.presets).map((p) => (p === b.defaultPreset ? `${p}*` : p)).join(', '),
      ]);
      out.push(`Backbones (* = default preset)\n${formatTable(['id', 'summary', 'presets'], rows)}`);
    }
    if (!what || what.startsWith('method')) {
      const rows = registry.methods().map((m) => [
        m.id,
        m.summary,
        describeConfig(m.schema)
          .filter((k) => k.default !== undefined)
          .slice(0, 4)
          .map((k) => `${k.key}=${JSON.stringify(k.default)}`)
          .join(' '),
      ]);
      out.push(`Methods\n${formatTable(['id', 'summary', 'defaults'], rows)}`);
    }
    this.log(out.join('\n\n'));
  }
}
