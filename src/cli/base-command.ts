// Shared behaviour of every `peft` command: the --backend flag, the plugin
// registry, and one clear line (exit 2) for user errors instead of a stack.
// Everything a command prints passes through here and is made printable
// (core/text.ts): errors and warnings become one line with control characters
// escaped and at most MAX_MESSAGE_LINE characters; other output keeps its
// newlines and tabs and has every other control character escaped. A name
// from a checkpoint or a dataset folder cannot send escape sequences to the
// user's terminal, however it reaches a message.
import { format } from 'node:util';
import { pathToFileURL } from 'node:url';
import { Command, Errors, Flags, ModuleLoader, type Interfaces } from '@oclif/core';
import { initBackend, type BackendReport } from '../app/backend.js';
import { PeftError } from '../core/errors.js';
import { printableLine, printableText, quoteName } from '../core/text.js';
import type { Registry } from '../core/registry/registry.js';
import { createDefaultRegistry } from '../builtins.js';
import { loadExternalPlugins, pluginWarning, type OclifHookSource, type OclifPluginLike, type PluginLoadResult } from '../core/plugins/load-plugins.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>;

export abstract class BaseCommand extends Command {
  static override baseFlags = {
    backend: Flags.string({
      description: 'TensorFlow.js backend: gpu, node, wasm or cpu (default: the fastest that loads; env PEFT_BACKEND)',
      helpGroup: 'GLOBAL',
    }),
    plugin: Flags.string({
      description: 'also load this plugin (a folder, a .js file or an installed package name); repeatable; see also PEFT_PLUGINS and `peft plugins link`',
      multiple: true,
      helpGroup: 'GLOBAL',
    }),
  };

  private registryPromise?: Promise<Registry>;
  /** `--plugin` values, captured when the command parses its flags. */
  protected pluginFlags: string[] = [];
  /** How each external plugin loaded (after `registry()`). */
  protected pluginResults: PluginLoadResult[] = [];
  /** Print a warning for each plugin that failed to load (`peft plugins` reports them itself). */
  protected warnPluginFailures = true;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  protected override async parse<F extends { [name: string]: any }, B extends { [name: string]: any }, A extends { [name: string]: any }>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const out = await super.parse(options, argv);
    const plugin = (out.flags as { plugin?: unknown }).plugin;
    if (Array.isArray(plugin)) this.pluginFlags = plugin.map(String);
    return out;
  }

  /** One line on stderr: `peft: warning: ...`, escaped and capped. */
  protected warnLine(text: string): void {
    process.stderr.write(`${printableLine(`peft: warning: ${text}`)}\n`);
  }

  /** Standard output, with control characters other than newlines and tabs escaped (JSON stays valid JSON). */
  override log(message = '', ...args: unknown[]): void {
    super.log(printableText(format(message, ...args)));
  }

  /** Warns when a composed model trains base tensors its method did not declare (a plugin that unfreezes or replaces base weights). */
  protected warnUndeclaredTrainable(report: { method: string; undeclaredTrainable: string[] }): void {
    const names = report.undeclaredTrainable;
    if (!names.length) return;
    const shown = names.slice(0, 3).map((n) => `'${n}'`).join(', ') + (names.length > 3 ? ` and ${names.length - 3} more` : '');
    this.warnLine(`method '${report.method}' leaves ${names.length} base tensor(s) trainable that it does not declare (${shown}): the backbone would train and be saved with the adapter; run 'peft verify ${report.method}'`);
  }

  /** The built-ins plus external plugins (linked, PEFT_PLUGINS, --plugin, oclif `peft:register` hooks); a plugin that fails is a warning. */
  protected registry(): Promise<Registry> {
    this.registryPromise ??= (async () => {
      const registry = await createDefaultRegistry();
      this.pluginResults = await loadExternalPlugins(registry, { flags: this.pluginFlags, oclif: this.oclifHooks() });
      for (const r of this.pluginResults) if (r.ok && r.root) loadedPluginRoots.set(r.root, r.name);
      watchLateRejections();
      if (this.warnPluginFailures) for (const r of this.pluginResults) if (!r.ok) process.stderr.write(`${printableLine(pluginWarning(r))}\n`);
      return registry;
    })();
    return this.registryPromise;
  }

  /** Installed oclif plugins that implement the `peft:register` hook. */
  protected oclifHooks(): OclifHookSource {
    const plugins = (this.config.getPluginsList?.() ?? []) as unknown as OclifPluginLike[];
    return {
      plugins,
      config: this.config,
      load: (plugin, target) => ModuleLoader.load(plugin as never, target),
    };
  }

  protected async backend(preferred?: string): Promise<BackendReport> {
    return initBackend({ preferred });
  }

  /** Prints a user error as one line and exits 2; anything else is a bug and keeps its stack. */
  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (err instanceof PeftError) return this.userError(err.message);
    // a flag's own check (cli/flag-values.ts) fails inside oclif's parser, which wraps it in a plain Error: its line is the message
    const flagCheck = /^Parsing --[\w-]+ \s*\n\t([\s\S]*?)\nSee more help with --help$/.exec(err.message ?? '');
    if (flagCheck && !(err instanceof Errors.CLIError)) return this.userError(flagCheck[1]!.trim());
    // oclif's flag and argument parsing errors are user errors too
    if (err instanceof Errors.CLIError && (err.constructor.name.endsWith('Error') && /flag|argument|arg|Expected|Missing|Unexpected|Nonexistent/i.test(err.message))) {
      return this.userError(err.message);
    }
    if ((err as { code?: string }).code === 'EEXIT') throw err;
    // a bug keeps its stack, but printable: its message may quote a name from a file
    try {
      err.message = printableText(err.message.length > 20_000 ? `${err.message.slice(0, 20_000)}…` : err.message);
      if (err.stack) err.stack = printableText(err.stack.length > 40_000 ? `${err.stack.slice(0, 40_000)}…` : err.stack);
    } catch {
      // a frozen error is printed as it is
    }
    return super.catch(err);
  }

  private userError(message: string): never {
    process.stderr.write(`${printableLine(`peft: error: ${message}`)}\n`);
    this.exit(2);
  }
}

/** External plugins loaded in this process, by folder: whom a late rejection is blamed on. */
const loadedPluginRoots = new Map<string, string>();
let watching = false;

/**
 * A plugin may leave a promise that rejects after it loaded, unhandled:
 * Node would print a raw stack and end the command with exit 1. A rejection
 * whose stack runs through a loaded plugin's files (or, without a stack,
 * while external plugins are loaded) is a warning naming the plugin(s), and
 * the command goes on; any other is peftjs's own bug and keeps Node's
 * behaviour (its stack, exit 1).
 */
function watchLateRejections(): void {
  if (watching || loadedPluginRoots.size === 0) return;
  watching = true;
  process.on('unhandledRejection', (reason) => {
    let stack = '';
    let text: string;
    try {
      stack = reason instanceof Error ? String(reason.stack ?? '') : '';
      text = reason instanceof Error ? reason.message : String(reason);
    } catch {
      text = 'a value that cannot be printed';
    }
    const blamed = [...loadedPluginRoots].filter(([root]) => stack.includes(root) || stack.includes(pathToFileURL(root).href)).map(([, name]) => name);
    if (blamed.length === 0 && reason instanceof Error && stack.includes('\n    at ')) throw reason;
    const who = blamed.length ? `plugin ${blamed.map((n) => quoteName(n)).join(', ')}` : `one of the plugins ${[...loadedPluginRoots.values()].map((n) => quoteName(n)).join(', ')}`;
    process.stderr.write(`${printableLine(`peft: warning: ${who} left a promise that rejected unhandled (${text}); the command goes on, but the plugin may not work`, 600)}\n`);
  });
}
