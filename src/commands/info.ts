import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { formatTable } from '../cli/table.js';
import { describeConfig } from '../core/registry/config.js';
import { describeFlagKeys } from '../core/registry/method-config.js';
import { z } from 'zod';

export default class Info extends BaseCommand {
  static override summary = "Show a backbone or method: its config keys, types, defaults and presets, a method's flags and run binding.";
  static override examples = ['<%= config.bin %> info lora', '<%= config.bin %> info sam --json'];
  static override args = {
    id: Args.string({ description: 'backbone or method id', required: true }),
  };
  static override flags = {
    json: Flags.boolean({ description: 'print the config JSON schema' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Info);
    const registry = await this.registry();
    const found = registry.any(args.id);
    const def = found.def;
    if (flags.json) {
      const extra =
        found.type === 'backbone'
          ? { presets: found.def.presets, defaultPreset: found.def.defaultPreset, display: found.def.display }
          : { display: found.def.display, flagKeys: found.def.flagKeys ?? {}, runBindingRule: found.def.runBindingRule };
      this.log(JSON.stringify({ id: def.id, type: found.type, summary: def.summary, schema: z.toJSONSchema(def.schema, { io: 'input', unrepresentable: 'any' }), ...extra }, null, 2));
      return;
    }
    const lines = [`${def.id} (${found.type}): ${def.summary}`];
    if (def.aliases?.length) lines.push(`aliases: ${def.aliases.join(', ')}`);
    if (found.type === 'method' && found.def.display) {
      const d = found.def.display;
      lines.push(`shown as: ${d.name}${d.mod ? ` (Medical-SAM-Adapter -mod ${d.mod})` : ''}`);
    }
    if (found.type === 'backbone' && found.def.display) {
      const d = found.def.display;
      const encoders = Object.entries(d.encoders ?? {}).map(([p, n]) => `${p === '*' ? 'other presets' : p} ${n}`);
      lines.push(`shown as: ${d.family}${encoders.length ? ` (encoders: ${encoders.join(', ')})` : ''}`);
    }
    const origin = registry.originOf(def.id);
    if (origin) lines.push(`from: ${origin}`);
    const keys = describeConfig(def.schema);
    lines.push('', 'Config', formatTable(['key', 'type', 'default', 'description'], keys.map((k) => [k.key, k.type, k.default === undefined ? '' : JSON.stringify(k.default), k.description ?? ''])));
    if (found.type === 'method') {
      const m = found.def;
      const bound = m.flagKeys && Object.keys(m.flagKeys).length ? describeFlagKeys(m) : 'none';
      lines.push('', `Flags (the key each sets): ${bound}; --set key=value sets any key`);
      if (m.runBindingRule) lines.push('', 'Run binding (train follows the run\'s length)', `  ${m.runBindingRule}`);
    }
    if (found.type === 'backbone') {
      const b = found.def;
      lines.push('', 'Presets (* = default)');
      for (const [name, preset] of Object.entries(b.presets)) {
        lines.push(`  ${name}${name === b.defaultPreset ? '*' : ''}: ${Object.entries(preset).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`);
      }
    }
    this.log(lines.join('\n'));
  }
}
