import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { formatTable } from '../../cli/table.js';
import { linkedPluginsPath, peftConfigDir } from '../../core/plugins/linked-plugins.js';

export default class Plugins extends BaseCommand {
  static override summary = 'List the external plugins (linked, PEFT_PLUGINS, --plugin, oclif hooks), whether each loaded, and what it registered.';
  static override description =
    'A plugin is an npm package (or a folder, or a .js file) exporting register(registry, peftjs), or an oclif plugin with a peft:register hook. Link one with `peft plugins link <dir>`; load one for a single command with --plugin <path|package>; or list several in PEFT_PLUGINS (separated by "," or ":"). See docs/plugins.md.';
  static override examples = ['<%= config.bin %> plugins', '<%= config.bin %> plugins --plugin ./examples/peftjs-ia3', 'PEFT_PLUGINS=peftjs-ia3 <%= config.bin %> plugins --json'];
  static override flags = {
    json: Flags.boolean({ description: 'print the load results as JSON' }),
  };

  // the table reports failures itself
  protected override warnPluginFailures = false;

  async run(): Promise<void> {
    const { flags } = await this.parse(Plugins);
    await this.registry();
    const results = this.pluginResults;
    if (flags.json) {
      this.log(JSON.stringify(results, null, 2));
      return;
    }
    const where = linkedPluginsPath(peftConfigDir());
    if (results.length === 0) {
      this.log(`no external plugins (linked plugins are listed in ${where}; see \`peft plugins link --help\`)`);
      return;
    }
    const ids = (r: (typeof results)[number]) =>
      [...r.registered.methods.map((m) => `method ${m}`), ...r.registered.backbones.map((b) => `backbone ${b}`), ...r.registered.parityKinds.map((k) => `parity ${k}`)].join(', ') || '(nothing)';
    const rows = results.map((r) => [r.version ? `${r.name} ${r.version}` : r.name, r.source, r.ok ? 'ok' : 'failed', r.ok ? ids(r) : (r.error ?? ''), r.root ?? r.spec]);
    this.log(formatTable(['plugin', 'source', 'status', 'registered', 'path'], rows));
    this.log(`\nlinked plugins: ${where}`);
    if (results.some((r) => !r.ok)) this.exit(1);
  }
}
