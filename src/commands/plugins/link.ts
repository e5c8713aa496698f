import { Args } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { createDefaultRegistry } from '../../builtins.js';
import { linkedPluginsPath, peftConfigDir } from '../../core/plugins/linked-plugins.js';
import { linkPlugin } from '../../core/plugins/link.js';

export default class PluginsLink extends BaseCommand {
  static override summary = 'Link a plugin folder (or .js file, or installed package) so that every peft command loads it.';
  static override description =
    'The plugin is loaded once, beside the built-ins and the plugins already linked, to check it; a plugin that fails to load, registers an invalid definition, or registers an id (or alias) that a built-in or a linked plugin already registers is not linked, and plugins.json is left as it was. Linking a plugin again (same name or folder) replaces it. Linked plugins are kept in $PEFT_CONFIG_DIR/plugins.json (default ~/.config/peftjs/plugins.json).';
  static override examples = ['<%= config.bin %> plugins link ./examples/peftjs-ia3', '<%= config.bin %> plugins link peftjs-ia3'];
  static override args = {
    plugin: Args.string({ description: 'plugin folder, .js file, or installed package name', required: true }),
  };

  async run(): Promise<void> {
    const { args } = await this.parse(PluginsLink);
    const configDir = peftConfigDir();
    const { plugin, result } = await linkPlugin(await createDefaultRegistry(), args.plugin, configDir);
    const what = [...result.registered.methods.map((m) => `method '${m}'`), ...result.registered.backbones.map((b) => `backbone '${b}'`)].join(', ') || 'nothing';
    this.log(`linked ${plugin.name} (${what}) from ${plugin.path}`);
    this.log(`(${linkedPluginsPath(configDir)})`);
  }
}
