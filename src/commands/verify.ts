// `peft verify <method>`: the law suite of one registered method (core laws, then its own).
import { Args, Flags } from '@oclif/core';
import { FLAG_LIMITS, integerFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { methodConfigFromFlags, methodFlags } from '../cli/model-flags.js';
import { formatLawResult, verifyMethod } from '../core/testing/laws.js';
import { PeftError } from '../core/errors.js';

export default class Verify extends BaseCommand {
  static override summary =
    "Check a PEFT method's laws (identity at init, only its own tensors train, frozen base, merge/unmerge, save/load, parameter counts, then the laws the method brings itself) with property-based tests.";
  static override description =
    "Runs the core laws over random shapes and configs (fast-check) on a small synthetic backbone, the method's default config first, then the method's own laws (its definition's `laws`, e.g. AdaLoRA's rank budget). Works for any registered method, built-in or from a plugin. Prints each law; a failing law names the tensor or key at fault and prints its shrunk counterexample, and the command exits 1.";
  static override examples = ['<%= config.bin %> verify lora', '<%= config.bin %> verify adalora --runs 50 --seed 7', '<%= config.bin %> verify ia3 --plugin ./examples/peftjs-ia3'];
  static override args = {
    method: Args.string({ description: 'method id', required: true }),
  };
  static override flags = {
    runs: integerFlag(FLAG_LIMITS.positive)({ description: 'cases per law', default: 20 }),
    seed: integerFlag(FLAG_LIMITS.integer)({ description: 'fast-check seed (to replay a failure)' }),
    'time-limit': integerFlag(FLAG_LIMITS.positive)({ description: 'seconds per law before it stops drawing new cases', default: 60 }),
    rank: methodFlags.rank,
    'target-rank': methodFlags['target-rank'],
    alpha: methodFlags.alpha,
    'mid-dim': methodFlags['mid-dim'],
    set: methodFlags.set,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Verify);
    await this.backend(flags.backend);
    const registry = await this.registry();
    if (flags.runs < 1) throw new PeftError(`--runs must be at least 1, got ${flags.runs}`);
    if (flags['time-limit'] <= 0) throw new PeftError(`--time-limit must be positive, got ${flags['time-limit']}`);
    const def = registry.method(args.method);
    const fixed = methodConfigFromFlags(def, flags);
    const seed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
    this.log(`verifying method '${def.id}' (${flags.runs} cases per law, seed ${seed}${Object.keys(fixed).length ? `, config ${JSON.stringify(fixed)}` : ', random configs'})`);
    const { ok, results } = await verifyMethod(
      registry,
      def.id,
      { numRuns: flags.runs, seed, timeLimitMs: flags['time-limit'] * 1000, ...(Object.keys(fixed).length ? { config: fixed } : {}) },
      (r) => this.log(formatLawResult(r)),
    );
    const failed = results.filter((r) => !r.ok && !r.skipped).length;
    const skipped = results.filter((r) => r.skipped).length;
    this.log(`${results.length - failed - skipped} passed, ${failed} failed, ${skipped} skipped`);
    if (!ok) {
      this.log(`replay with: peft verify ${def.id} --seed ${seed} --runs ${flags.runs}`);
      this.exit(1);
    }
  }
}
