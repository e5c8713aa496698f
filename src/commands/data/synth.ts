import { Flags } from '@oclif/core';
import { FLAG_LIMITS, integerFlag, pathFlag } from '../../cli/flag-values.js';
import { BaseCommand } from '../../cli/base-command.js';
import { defaultSynthOptions, synthesize } from '../../app/data/synth-output.js';

export default class DataSynth extends BaseCommand {
  static override summary = 'Write a synthetic fundus dataset in the REFUGE layout (deterministic from the seed).';
  static override description =
    'Writes OUT/Training-400 and OUT/Test-400 (80/20), each sample NAME/NAME.jpg with 7 rater masks per structure (NAME_seg_cup_K.png, NAME_seg_disc_K.png, grey 0/255): ' +
    'textured fundus, vessels, optic disc and cup of varying size, position and contrast. Samples are written on worker threads (one per core); the same seed gives the same bytes. ' +
    'OUT must be new, empty or a previous synth output; --force adds the dataset to another folder without overwriting any file of yours.';
  static override examples = ['<%= config.bin %> data synth --out data/synth', '<%= config.bin %> data synth --out /tmp/fundus --n 400 --size 512 --seed 7'];
  static override flags = {
    out: pathFlag({ description: 'output folder', required: true }),
    n: integerFlag({ min: 1, max: 100_000 })({ description: 'number of samples (train + test)', default: defaultSynthOptions.n }),
    size: integerFlag(FLAG_LIMITS.imageSize)({ description: 'image side in pixels', default: defaultSynthOptions.size }),
    seed: integerFlag(FLAG_LIMITS.integer)({ description: 'random seed', default: defaultSynthOptions.seed }),
    force: Flags.boolean({ description: 'write into a non-empty folder that is not a previous synth output (never overwrites its files)', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DataSynth);
    const t0 = Date.now();
    const s = await synthesize(flags.out, { n: flags.n, size: flags.size, seed: flags.seed }, flags.force);
    const mb = s.bytes >= 1024 * 1024 ? `${(s.bytes / (1024 * 1024)).toFixed(1)} MB` : `${Math.ceil(s.bytes / 1024)} kB`;
    this.log(`wrote ${s.train + s.test} samples (${s.train} Training-400, ${s.test} Test-400) at ${s.size} px, seed ${s.seed}, to ${s.dir}${s.replaced ? ' (replacing the previous synth output)' : ''}: ${s.files} files, ${mb} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}
