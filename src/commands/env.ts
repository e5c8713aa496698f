import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { BaseCommand } from '../cli/base-command.js';
import { nativeEnvLines } from '../accel/native/index.js';
import { wasmThreadsLine } from '../accel/wasm-threads/index.js';

const require = createRequire(import.meta.url);

export default class Env extends BaseCommand {
  static override summary = 'Show the TensorFlow.js backend in use, why faster ones were skipped, and versions.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Env);
    const report = await this.backend(flags.backend);
    const version = (pkg: string) => {
      try {
        return (require(`${pkg}/package.json`) as { version: string }).version;
      } catch {
        return 'not installed';
      }
    };
    const lines = [`backend: ${report.active}`];
    for (const a of report.attempts) lines.push(`  ${a.ok ? 'ok  ' : 'skip'} ${a.name}${a.reason ? `: ${a.reason}` : ''}`);
    if (report.wasm) lines.push(`wasm: SIMD ${report.wasm.simd ? 'yes' : 'no'}; ${wasmThreadsLine()}`);
    lines.push(...nativeEnvLines());
    lines.push(
      `peftjs ${(require('../../../package.json') as { version: string }).version}`,
      `node ${process.version} (${os.platform()} ${os.arch()}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB)`,
      `@tensorflow/tfjs ${tf.version.tfjs}`,
      `@tensorflow/tfjs-backend-wasm ${version('@tensorflow/tfjs-backend-wasm')}`,
      `@tensorflow/tfjs-node ${version('@tensorflow/tfjs-node')}`,
      `@tensorflow/tfjs-node-gpu ${version('@tensorflow/tfjs-node-gpu')}`,
    );
    this.log(lines.join('\n'));
  }
}
