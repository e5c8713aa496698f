import { Flags } from '@oclif/core';
import { pathFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { defaultServeLimits, defaultServeRateLimit, isLoopback, openServedRuns, startServer } from '../app/serve/index.js';

export default class Serve extends BaseCommand {
  static override summary = 'Serve trained runs behind an interactive click-to-segment page (and a small JSON API).';
  static override description =
    'Starts a local web server with one page: open an image (upload, or one of the run\'s test images), click for a positive point, right-click for a negative one, drag for a box, and the mask appears over the image. ' +
    'The image encoder runs once per image and run (its embedding is cached); each click runs only the prompt encoder and mask decoder. With several --run, a switch compares their masks on the same prompts, with the ground truth of test images. ' +
    'Listens on 127.0.0.1 unless --host says otherwise; --port 0 picks a free port. The API is described in docs/serve.md. Stop with Ctrl+C.';
  static override examples = [
    '<%= config.bin %> serve --run runs/mobile_sam-tiny-lora',
    '<%= config.bin %> serve --run runs/lora --run runs/adapter --port 0',
    '<%= config.bin %> serve --run runs/x --checkpoint last --cache 16 --rate-limit 0',
  ];
  static override flags = {
    run: pathFlag({ description: 'run directory (written by peft train); repeatable to compare runs', required: true, multiple: true }),
    checkpoint: pathFlag({ description: "'best' (default), 'last', or a checkpoint directory, for every run" }),
    port: Flags.integer({ char: 'p', description: 'TCP port (0: any free port)', default: 8808, min: 0, max: 65535 }),
    host: Flags.string({ description: 'address to listen on; anything but loopback makes the page reachable from other machines', default: '127.0.0.1' }),
    cache: Flags.integer({ description: 'image embeddings kept (one per image and run; least recently used dropped first)', default: defaultServeLimits.embeddings, min: 1, max: 1024 }),
    'max-upload-mb': Flags.integer({ description: 'largest image upload, MiB', default: defaultServeLimits.uploadBytes / (1024 * 1024), min: 1, max: 512 }),
    'max-pixels': Flags.integer({ description: 'largest image, in pixels (width x height)', default: defaultServeLimits.imagePixels, min: 1 }),
    'rate-limit': Flags.integer({ description: `requests per minute one address may make (0: no limit)`, default: defaultServeRateLimit.max, min: 0 }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    await this.backend(flags.backend);
    const registry = await this.registry();
    if (!isLoopback(flags.host)) this.warnLine(`listening on ${flags.host}: anyone who can reach this address can use the page and the models; there is no authentication`);
    const runs = await openServedRuns(registry, flags.run, { checkpoint: flags.checkpoint, warn: (line) => this.warnLine(line) });
    let server;
    try {
      server = await startServer(runs, {
        host: flags.host,
        port: flags.port,
        limits: { embeddings: flags.cache, uploadBytes: flags['max-upload-mb'] * 1024 * 1024, imagePixels: flags['max-pixels'] },
        rateLimit: flags['rate-limit'] > 0 ? { max: flags['rate-limit'], windowMs: 60_000 } : false,
      });
    } catch (err) {
      for (const r of runs) r.predictor.dispose();
      throw err;
    }
    this.log(`serving on ${server.url}`);
    for (const [i, r] of runs.entries()) this.log(`  run ${i}: ${r.label} (${r.description})${r.testImages ? `, ${r.testImages.names.length} test images (${r.testImages.split})` : ''}`);
    this.log('Ctrl+C stops the server.');
    await new Promise<void>((resolveStop) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolveStop();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close();
    for (const r of runs) r.predictor.dispose();
  }
}
