// Shared behaviour of every `peft` command: the --backend flag, the plugin
// registry, and one clear line (exit 2) for user errors instead of a stack.
import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import { initBackend, type BackendReport } from '../core/backend.js';
import { PeftError } from '../core/errors.js';
import type { Registry } from '../core/registry/registry.js';
import { createDefaultRegistry } from '../builtins.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>;

export abstract class BaseCommand extends Command {
  static override baseFlags = {
    backend: Flags.string({
      description: 'TensorFlow.js backend: gpu, node, wasm or cpu (default: the fastest that loads; env PEFT_BACKEND)',
      helpGroup: 'GLOBAL',
    }),
  };

  private registryPromise?: Promise<Registry>;

  protected registry(): Promise<Registry> {
    this.registryPromise ??= createDefaultRegistry();
    return this.registryPromise;
  }

  protected async backend(preferred?: string): Promise<BackendReport> {
    return initBackend({ preferred });
  }

  /** Prints a user error as one line and exits 2; anything else is a bug and keeps its stack. */
  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (err instanceof PeftError) return this.userError(err.message);
    // oclif's flag and argument parsing errors are user errors too
    if (err instanceof Errors.CLIError && (err.constructor.name.endsWith('Error') && /flag|argument|arg|Expected|Missing|Unexpected|Nonexistent/i.test(err.message))) {
      return this.userError(err.message);
    }
    if ((err as { code?: string }).code === 'EEXIT') throw err;
    return super.catch(err);
  }

  private userError(message: string): never {
    process.stderr.write(`peft: error: ${message.replace(/\s+/g, ' ').trim()}\n`);
    this.exit(2);
  }
}
