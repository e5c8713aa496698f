// `npm run bench:main-job`: the README's main job (`peft train` with no flags:
// mobile_sam tiny + lora, the mask decoder trained, batch 2 at 128 px, one
// click per image, multimask logits for 2 classes at 32 px, BCE with
// pos_weight 2, Adam) timed step by step with the library's own trainStep
// (src/app/train/step.ts), next to the same step in PyTorch
// (torch/trainer_step.py), in interleaved rounds: ours, then torch, again.
//
//   npm run bench:main-job -- [--rounds 5] [--steps 30] [--json] [--no-torch]
//   npm run -s bench:main-job -- --list-parameters   (name shape T|-, sorted: diff with trainer_step.py's)
//
// Each round times `--steps` steps after 3 warm-up steps (ours in this
// process, kept warm across rounds; torch in a new process at 1 and 2 torch
// threads over OPENBLAS_NUM_THREADS=1, the faster kept, with the
// OPENBLAS_CORETYPE our addon's loader picks). Printed: each round's medians,
// the median over rounds of each side and of the rounds' ratios, and both
// sides' parameter counts (they must match what `peft train` prints).
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../src/app/backend.js';
import { nativeStatus } from '../../src/accel/native/index.js';
import { compose } from '../../src/core/peft/compose.js';
import { Adam } from '../../src/app/train/adam.js';
import { createLoss } from '../../src/app/train/losses.js';
import { trainStep, type Batch } from '../../src/app/train/step.js';
import { benchRegistry } from './case.js';

const here = dirname(fileURLToPath(import.meta.url));
// compiled into .cache/bench/scripts/bench/: the sources are in scripts/bench/ of the repository, four levels up
const benchDir = existsSync(resolve(here, 'torch/trainer_step.py')) ? here : resolve(here, '../../../../scripts/bench');
const root = resolve(benchDir, '../..');

interface Args {
  rounds: number;
  steps: number;
  json: boolean;
  torch: boolean;
  listParameters: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { rounds: 5, steps: 30, json: false, torch: true, listParameters: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${v} needs a positive integer`);
      return n;
    };
    if (v === '--rounds') a.rounds = num();
    else if (v === '--steps') a.steps = num();
    else if (v === '--json') a.json = true;
    else if (v === '--no-torch') a.torch = false;
    else if (v === '--list-parameters') a.listParameters = true;
    else if (v === '--no-build') continue;
    else if (v === '--help' || v === '-h') {
      process.stdout.write('usage: npm run bench:main-job -- [--rounds 5] [--steps 30] [--json] [--no-torch] [--no-build] [--list-parameters]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${v}`);
  }
  return a;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/** The main job, composed as `peft train` composes it, and one fixed batch of its shapes. */
async function mainJob() {
  const backend = await initBackend({ quiet: true });
  const registry = await benchRegistry();
  const backbone = registry.createBackbone('mobile_sam', 'tiny', {});
  const method = registry.createMethod('lora', {});
  const peft = compose(backbone, method, { trainDecoder: true });
  const report = peft.report();
  const size = backbone.imageSize;
  const out = size / 4;
  const b = 2;
  // targets: a disc and a cup (concentric, as the synthetic fundus data), channels-last [B, 32, 32, 2]
  const tgt = new Float32Array(b * out * out * 2);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < out; y++) {
      for (let x = 0; x < out; x++) {
        const r = Math.hypot(y - out / 2, x - out / 2);
        const at = ((n * out + y) * out + x) * 2;
        tgt[at] = r < out / 4 ? 1 : 0;
        tgt[at + 1] = r < out / 8 ? 1 : 0;
      }
    }
  }
  const batch: Batch = {
    images: tf.randomNormal([b, size, size, 3], 0, 1, 'float32', 1234) as tf.Tensor4D,
    targets: tf.tensor4d(tgt, [b, out, out, 2]),
    // one positive click on the cup per image, in image pixels (as buildPrompts's 'click')
    prompts: { points: { coords: tf.fill([b, 1, 2], size / 2 - 0.5) as tf.Tensor3D, labels: tf.ones([b, 1]) as tf.Tensor2D } },
  };
  const adam = new Adam({ lr: 3e-3 });
  const loss = createLoss('bce');
  let step = 0;
  const run = (): number => trainStep(peft, adam, batch, loss, ++step).loss;
  const nat = nativeStatus();
  const native = nat.active ? `native kernels on (${nat.threads} thread${nat.threads === 1 ? '' : 's'})` : `native kernels off (${nat.reason ?? '?'})`;
  const trainable = new Set(peft.trainable().map(([name]) => name));
  const names = [...peft.model.namedParameters()].map(([name, p]) => `${name} ${p.variable.shape.join('x')} ${trainable.has(name) ? 'T' : '-'}`);
  return { backend: backend.active, native, report, run, size, batch: b, names };
}

interface TorchRound {
  stepMs?: number;
  stepCpuMs?: number;
  threads?: number;
  byThreads?: Record<string, { stepMs: number }>;
  trainableParameters?: number;
  totalParameters?: number;
  countsMatch?: boolean;
  blas?: string;
  torch?: string;
  error?: string;
}

function coreType(): string | undefined {
  if (process.env.OPENBLAS_CORETYPE) return process.env.OPENBLAS_CORETYPE;
  try {
    const { chooseCoreType } = createRequire(import.meta.url)(resolve(root, 'native/coretype.js')) as { chooseCoreType(): { coretype: string } | undefined };
    return chooseCoreType()?.coretype;
  } catch {
    return undefined;
  }
}

function torchRound(steps: number, trainable: number, total: number): TorchRound {
  const python = process.env.PEFT_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const argv = [resolve(benchDir, 'torch/trainer_step.py'), '--json', '--steps', String(steps), '--threads', '1,2'];
  argv.push('--expect-trainable', String(trainable), '--expect-total', String(total));
  const core = coreType();
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', ...(core ? { OPENBLAS_CORETYPE: core } : {}) };
  const r = spawnSync(python, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env });
  const stderr = (r.stderr ?? '').trim();
  if (r.error) return { error: `${python}: ${r.error.message}` };
  if (/No module named '?torch/.test(stderr)) return { error: `${python} has no torch (Debian: apt-get install python3-torch; or set PEFT_BENCH_PYTHON)` };
  if (stderr.includes('MISMATCH')) process.stderr.write(`${stderr}\n`);
  try {
    return JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '') as TorchRound;
  } catch {
    return { error: stderr.split('\n').filter(Boolean).slice(-2).join(' | ').slice(0, 300) || `exit ${r.status}` };
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const job = await mainJob();
  if (args.listParameters) {
    process.stdout.write(`${[...job.names].sort().join('\n')}\n`);
    return;
  }
  const { trainableParameters: trainable, totalParameters: total } = job.report;
  const say = (s: string) => {
    if (!args.json) process.stdout.write(`${s}\n`);
  };
  say(`main job: mobile_sam (tiny, ${job.size} px) + lora, mask decoder trained, batch ${job.batch}, click prompt, bce; backend ${job.backend}, ${job.native}`);
  say(`ours:  ${trainable.toLocaleString('en')} trainable of ${total.toLocaleString('en')} parameters`);
  for (let i = 0; i < 3; i++) job.run(); // warm-up: kernel set-up, caches
  const rounds: { ours: number; oursCpu: number; torch?: number; torchCpu?: number; torchThreads?: number }[] = [];
  let torchInfo: TorchRound | undefined;
  let torchOff = !args.torch;
  for (let k = 0; k < args.rounds; k++) {
    const ms: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < args.steps; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      job.run();
      ms.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
    }
    const row: (typeof rounds)[number] = { ours: median(ms), oursCpu: median(cpu) };
    if (!torchOff) {
      const t = torchRound(args.steps, trainable, total);
      if (t.error) {
        process.stderr.write(`bench:main-job: torch skipped: ${t.error}\n`);
        torchOff = true;
      } else {
        torchInfo ??= t;
        row.torch = t.stepMs;
        row.torchCpu = t.stepCpuMs;
        row.torchThreads = t.threads;
      }
    }
    rounds.push(row);
    const torchCell = row.torch !== undefined ? `, torch ${round(row.torch)} ms/step (${row.torchThreads}t, cpu ${round(row.torchCpu ?? NaN)} ms), ratio ${round(row.ours / row.torch, 2)}` : '';
    say(`round ${k + 1}: ours ${round(row.ours)} ms/step (cpu ${round(row.oursCpu)} ms)${torchCell}`);
  }
  const ours = median(rounds.map((r) => r.ours));
  const withTorch = rounds.filter((r) => r.torch !== undefined);
  const torch = withTorch.length ? median(withTorch.map((r) => r.torch!)) : undefined;
  const ratios = withTorch.map((r) => r.ours / r.torch!);
  const oursCpu = median(rounds.map((r) => r.oursCpu));
  const torchCpu = withTorch.length ? median(withTorch.map((r) => r.torchCpu ?? NaN)) : undefined;
  const load = loadavg().map((x) => round(x, 2));
  if (torchInfo) {
    say(`torch: ${torchInfo.trainableParameters?.toLocaleString('en')} trainable of ${torchInfo.totalParameters?.toLocaleString('en')} parameters (${torchInfo.countsMatch ? 'match' : 'DO NOT MATCH'}); torch ${torchInfo.torch}, ${torchInfo.blas}`);
  }
  say(`cpu (user + sys) per step, median: ours ${round(oursCpu)} ms${torchCpu !== undefined ? `, torch ${round(torchCpu)} ms` : ''}`);
  say(`median of ${rounds.length} rounds x ${args.steps} steps: ours ${round(ours)} ms/step${torch !== undefined ? `, torch ${round(torch)} ms/step, ours/torch ${round(ours / torch, 2)} (median of the rounds' ratios ${round(median(ratios), 2)})` : ''}; load ${load.join(' ')}`);
  if (args.json) {
    process.stdout.write(
      `${JSON.stringify({
        job: 'mobile_sam tiny + lora (peft train defaults)',
        backend: job.backend,
        trainableParameters: trainable,
        totalParameters: total,
        steps: args.steps,
        rounds,
        native: job.native,
        stepMs: round(ours, 2),
        stepCpuMs: round(oursCpu, 2),
        ...(torch !== undefined ? { torchMs: round(torch, 2), torchCpuMs: round(torchCpu ?? NaN, 2), ratio: round(ours / torch, 3), ratioOfRounds: round(median(ratios), 3) } : {}),
        ...(torchInfo ? { torchCountsMatch: torchInfo.countsMatch, torchTrainable: torchInfo.trainableParameters, torchTotal: torchInfo.totalParameters, torchBlas: torchInfo.blas } : {}),
        loadAvg: load,
        date: new Date().toISOString(),
      })}\n`,
    );
  }
  if (torchInfo && torchInfo.countsMatch === false) process.exitCode = 2;
}

await main();
