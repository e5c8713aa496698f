// A worker thread of `writeSyntheticFundus`: writes one range of samples and
// posts back the counts, or the error's message and code.
import { parentPort, workerData } from 'node:worker_threads';
import { writeSampleRange, type SynthOptions } from './synthetic-fundus.js';

const { dir, opts, from, to } = workerData as { dir: string; opts: SynthOptions; from: number; to: number };
try {
  parentPort!.postMessage({ counts: writeSampleRange(dir, opts, from, to) });
} catch (err) {
  parentPort!.postMessage({ error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } });
}
