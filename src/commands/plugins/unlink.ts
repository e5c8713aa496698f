import { Args } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { peftConfigDir, removeLinkedPlugin } from '../../core/plugins/linked-plugins.js';

export default class PluginsUnlink extends BaseCommand {
  static override summary = 'Unlink a plugin linked with `peft plugins link` (by name or path).';
  static override examples = ['<%= config.bin %> plugins unlink peftjs-ia3'];
  static override args = {
    plugin: Args.string({ description: 'the linked plugin\'s name (see `peft plugins`) or its path', required: true }),
  };

  async run(): Promise<void> {
    const { args } = await this.parse(PluginsUnlink);
    for (const p of removeLinkedPlugin(peftConfigDir(), args.plugin)) this.log(`unlinked ${p.name} (${p.path})`);
  }
}
