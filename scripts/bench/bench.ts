// `npm run bench`: training-step benchmark of the PEFT methods on the SAM
// family's image encoders. With one workload and one method it runs the case
// in this process (`--json` prints one JSON object); otherwise it runs every
// selected case in a child process of its own (so peak memory is per case),
// prints a table, and writes all results as JSON.
//
//   npm run bench                                   all workloads x methods
//   npm run bench -- --workload w2 --method lora --json
//   options: --workload w1,w2  --method lora,adapter  --backend wasm|cpu|...
//            --backprop core|low-memory|engine  --steps 5  --forwards 3  --kernels
//            --out file.json  --json
//            --torch   also run the PyTorch reference (torch/step.py) per case: "torch ms" columns
//            --rounds N   run each case N times (ours and torch in turn) and report medians
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCase, type CaseResult } from './case.js';
import { METHODS, WORKLOADS, findMethod, findWorkload } from './workloads.js';

interface Args {
  workloads: string[];
  methods: string[];
  backend?: string;
  steps: number;
  forwards: number;
  kernels: boolean;
  json: boolean;
  out?: string;
  backprop?: 'core' | 'low-memory' | 'engine';
  torch: boolean;
  /** Repeats of each case (with --torch: ours, then torch, in turn); the medians are reported. */
  rounds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { workloads: [], methods: [], steps: 5, forwards: 3, kernels: false, json: false, torch: false, rounds: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--workload':
      case '--workloads':
        args.workloads.push(...value().split(','));
        break;
      case '--method':
      case '--methods':
        args.methods.push(...value().split(','));
        break;
      case '--backend':
        args.backend = value();
        break;
      case '--steps':
        args.steps = Math.max(1, Number.parseInt(value(), 10));
        break;
      case '--forwards':
        args.forwards = Math.max(1, Number.parseInt(value(), 10));
        break;
      case '--backprop': {
        const v = value();
        if (v !== 'core' && v !== 'low-memory' && v !== 'engine') throw new Error(`--backprop must be core, low-memory or engine, got '${v}'`);
        args.backprop = v;
        break;
      }
      case '--kernels':
        args.kernels = true;
        break;
      case '--json':
        args.json = true;
        break;
      case '--torch':
        args.torch = true;
        break;
      case '--rounds':
        args.rounds = Math.max(1, Number.parseInt(value(), 10));
        break;
      case '--out':
        args.out = value();
        break;
      case '--no-build':
        break; // handled by run.mjs
      case '--help':
      case '-h':
        process.stdout.write(
          'usage: npm run bench -- [--workload w1,w2] [--method lora,adapter,adalora] [--backend wasm] [--backprop core|low-memory|engine] [--steps 5] [--forwards 3] [--kernels] [--json] [--out file.json] [--torch] [--rounds 1]\n',
        );
        process.exit(0);
      default:
        throw new Error(`unknown option '${a}' (see --help)`);
    }
  }
  args.workloads.forEach(findWorkload);
  args.methods.forEach(findMethod);
  return args;
}

/** The launcher (run.mjs) that started this process; children run through it too. */
const launcher = process.env.PEFT_BENCH_LAUNCHER ?? resolve(process.cwd(), 'scripts/bench/run.mjs');
/** scripts/bench/ in the source tree. */
const benchDir = dirname(launcher);

/** The PyTorch reference's figures for a case (torch/step.py --json), or why it did not run. */
interface TorchFigures {
  stepMs?: number;
  stepCpuMs?: number;
  threads?: number;
  countsMatch?: boolean;
  error?: string;
}

/** One round of a case repeated with --rounds: our step ms and the reference's. */
interface Round {
  stepMs?: number;
  torchMs?: number;
}

type Row = (CaseResult | { workload: string; method: string; error: string }) & { torch?: TorchFigures; rounds?: Round[] };

/** Set once the reference cannot run at all (no Python, no torch): said once, then skipped. */
let torchUnavailable: string | undefined;

/**
 * PyTorch at its best on this machine: with the thread count given
 * (PEFT_NATIVE_THREADS / OPENBLAS_NUM_THREADS) as it is; otherwise at 1 and at
 * 2 threads, each with OPENBLAS_NUM_THREADS=1, and the faster of the two.
 * (PyTorch's default here, 2 OpenMP threads over an OpenBLAS that starts its
 * own 2, oversubscribes the cores and is 2x slower or worse: a ratio against
 * it would flatter us.)
 */
function runTorch(workload: string, method: string, args: Args, ours?: CaseResult): TorchFigures | undefined {
  if (process.env.PEFT_NATIVE_THREADS ?? process.env.OPENBLAS_NUM_THREADS) return runTorchAt(workload, method, args, ours);
  const one = runTorchAt(workload, method, args, ours, '1');
  if (one === undefined) return undefined;
  const two = runTorchAt(workload, method, args, ours, '2');
  if (one.stepMs === undefined) return two?.stepMs !== undefined ? two : one;
  return two?.stepMs !== undefined && two.stepMs < one.stepMs ? two : one;
}

function runTorchAt(workload: string, method: string, args: Args, ours?: CaseResult, torchThreads?: string): TorchFigures | undefined {
  if (torchUnavailable !== undefined) return undefined;
  // Debian's python3-torch lives in the system Python, which a pyenv python3 on PATH would hide
  const python = process.env.PEFT_BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const argv = [resolve(benchDir, 'torch/step.py'), '--workload', workload, '--method', method, '--json'];
  argv.push('--steps', String(args.steps), '--forwards', String(args.forwards));
  // the same thread count as ours (the native kernels'), else torch's default: the cores
  const threads = torchThreads ?? process.env.PEFT_NATIVE_THREADS ?? process.env.OPENBLAS_NUM_THREADS;
  if (threads) argv.push('--threads', threads);
  if (ours) argv.push('--expect-trainable', String(ours.trainableParameters), '--expect-total', String(ours.totalParameters));
  const env = torchThreads ? { ...process.env, OPENBLAS_NUM_THREADS: '1' } : process.env;
  const r = spawnSync(python, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env });
  const stderr = (r.stderr ?? '').trim();
  if (r.error || /No module named '?torch/.test(stderr)) {
    torchUnavailable = r.error ? `${python}: ${r.error.message}` : `${python} has no torch (Debian: apt-get install python3-torch; or set PEFT_BENCH_PYTHON)`;
    process.stderr.write(`bench: --torch skipped: ${torchUnavailable}\n`);
    return undefined;
  }
  if (stderr.includes('MISMATCH')) process.stderr.write(`${stderr}\n`);
  try {
    const t = JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '') as TorchFigures;
    return { stepMs: t.stepMs, stepCpuMs: t.stepCpuMs, threads: t.threads, countsMatch: t.countsMatch };
  } catch {
    return { error: stderr.split('\n').filter(Boolean).slice(-2).join(' | ').slice(0, 300) || `exit ${r.status}` };
  }
}

function runChild(workload: string, method: string, args: Args): CaseResult | { workload: string; method: string; error: string } {
  const argv = [launcher, '--no-build', '--workload', workload, '--method', method, '--json', '--steps', String(args.steps), '--forwards', String(args.forwards)];
  if (args.backend) argv.push('--backend', args.backend);
  if (args.kernels) argv.push('--kernels');
  if (args.backprop) argv.push('--backprop', args.backprop);
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 2 ** 20 });
  const lines = (r.stdout ?? '').trim().split('\n');
  const last = lines[lines.length - 1];
  if (r.status === 0 && last) {
    try {
      return JSON.parse(last) as CaseResult;
    } catch {
      /* fall through */
    }
  }
  const why = (r.stderr ?? '').trim().split('\n').filter(Boolean).slice(-3).join(' | ') || `exit ${r.status}`;
  return { workload, method, error: why.slice(0, 400) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * A case run `args.rounds` times, ours and (with --torch) the reference's in
 * turn, so that both see the same machine state; a row of the medians (step
 * ms, step cpu ms; the other columns from the first round) with every round kept.
 */
function runRounds(w: string, m: string, args: Args): Row {
  const ours: CaseResult[] = [];
  const theirs: TorchFigures[] = [];
  const rounds: Round[] = [];
  let failed: Row | undefined;
  for (let i = 0; i < args.rounds; i++) {
    const r = runChild(w, m, args);
    if ('error' in r) {
      failed = r;
      break;
    }
    ours.push(r);
    const t = args.torch ? runTorch(w, m, args, r) : undefined;
    if (t) theirs.push(t);
    rounds.push({ stepMs: r.stepMs, ...(t?.stepMs !== undefined ? { torchMs: t.stepMs } : {}) });
  }
  if (failed || ours.length === 0) return failed ?? { workload: w, method: m, error: 'no round ran' };
  const row: Row = { ...ours[0]!, stepMs: median(ours.map((r) => r.stepMs)), stepCpuMs: median(ours.map((r) => r.stepCpuMs)) };
  const timed = theirs.filter((t) => t.stepMs !== undefined);
  if (timed.length) row.torch = { ...timed[0]!, stepMs: median(timed.map((t) => t.stepMs!)), stepCpuMs: median(timed.map((t) => t.stepCpuMs!)) };
  else if (theirs.length) row.torch = theirs[0];
  if (args.rounds > 1) row.rounds = rounds;
  return row;
}

function table(results: Row[]): string {
  const withTorch = results.some((r) => r.torch);
  const head = ['workload', 'method', 'backend', 'step ms', 'step cpu ms', 'first ms', 'infer ms', 'GFLOP/step', 'GFLOP/s', 'peak RSS MB', 'peak tensor MB', 'leak'];
  if (withTorch) head.push('torch ms', 'torch cpu ms', 'x torch');
  const torchCells = (r: Row): string[] => {
    const t = r.torch;
    if (!withTorch) return [];
    if (!t || t.stepMs === undefined) return [t?.error ? 'error' : '-', '-', '-'];
    let ratio = 'error' in r ? '-' : (r.stepMs / t.stepMs).toFixed(2);
    // with --rounds: the range of the rounds' own ratios
    const each = (r.rounds ?? []).filter((x) => x.stepMs !== undefined && x.torchMs !== undefined).map((x) => x.stepMs! / x.torchMs!);
    if (each.length > 1) ratio += ` (${Math.min(...each).toFixed(2)}-${Math.max(...each).toFixed(2)})`;
    return [`${t.stepMs.toFixed(0)} (${t.threads}t)${t.countsMatch === false ? ' !params' : ''}`, t.stepCpuMs!.toFixed(0), ratio];
  };
  const rows = results.map((r) =>
    'error' in r
      ? [r.workload, r.method, 'error: ' + r.error]
      : [
          r.workload,
          r.method,
          r.backend + (r.wasm ? (r.wasm.simd ? '+simd' : '') + (r.wasm.threads ? '+threads' : '') + (r.fastPaths ? '' : ' (stock)') : '') + (r.native?.active ? ' +native' : '') + (r.backprop === 'low-memory' ? ' lowmem' : ''),
          r.stepMs.toFixed(0),
          r.stepCpuMs.toFixed(0),
          r.firstStepMs.toFixed(0),
          r.inferenceMs.toFixed(0),
          r.stepGflop.toFixed(2),
          r.gflops.toFixed(1),
          r.peakRssMB.toFixed(0),
          r.peakTensorMB.toFixed(0),
          String(r.tensorsLeaked),
          ...torchCells(r),
        ],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.length === head.length ? (r[i] ?? '').length : 0))));
  const fmt = (r: string[]) => (r.length === head.length ? r.map((c, i) => c.padStart(widths[i]!)).join('  ') : r.join('  '));
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const single = args.workloads.length === 1 && args.methods.length === 1;
  if (single) {
    const result = await runCase(findWorkload(args.workloads[0]!), findMethod(args.methods[0]!), {
      backend: args.backend,
      steps: args.steps,
      forwards: args.forwards,
      kernels: args.kernels,
      backprop: args.backprop,
    });
    const row: Row = args.torch ? { ...result, torch: runTorch(result.workload, result.method, args, result) } : result;
    if (args.out) writeJson(args.out, row);
    if (args.json) process.stdout.write(JSON.stringify(row) + '\n');
    else {
      process.stdout.write(table([row]) + '\n');
      if (result.kernels) printKernels(result);
    }
    return;
  }
  const workloads = args.workloads.length ? args.workloads : WORKLOADS.filter((w) => w.id !== 'w0').map((w) => w.id);
  const methods = args.methods.length ? args.methods : METHODS.map((m) => m.id);
  const results: Row[] = [];
  for (const w of workloads) {
    for (const m of methods) {
      process.stderr.write(`bench: ${w} ${m} ...\n`);
      const r = runRounds(w, m, args);
      results.push(r);
      const torchNote = r.torch?.stepMs !== undefined ? `, torch ${r.torch.stepMs} ms/step` : '';
      if (!args.json) process.stderr.write(`  ${'error' in r ? 'error: ' + r.error : `${r.stepMs} ms/step`}${torchNote}\n`);
    }
  }
  const out = args.out ?? resolve(benchDir, 'out/latest.json');
  writeJson(out, results);
  if (args.json) process.stdout.write(JSON.stringify(results) + '\n');
  else {
    process.stdout.write(table(results) + '\n');
    for (const r of results) if (!('error' in r) && r.kernels) printKernels(r);
    if (results.some((r) => r.torch)) process.stdout.write('torch: the PyTorch reference (scripts/bench/torch/step.py), same workload and method; x torch = step ms / torch ms\n');
    if (args.rounds > 1) process.stdout.write(`rounds: ${args.rounds} per case (ours and torch in turn); step ms and torch ms are medians, x torch their ratio (the rounds' own ratios in brackets)\n`);
    process.stdout.write(`results: ${out}\n`);
  }
}

function printKernels(r: CaseResult): void {
  process.stdout.write(`\n${r.workload} ${r.method}: kernels of one profiled step (ms, calls, GFLOP)\n`);
  for (const k of r.kernels ?? []) {
    process.stdout.write(`  ${k.name.padEnd(36)} ${k.ms.toFixed(1).padStart(8)} ${String(k.calls).padStart(6)} ${k.gflop.toFixed(3).padStart(9)}\n`);
  }
  process.stdout.write(`\n${r.workload} ${r.method}: slowest kernels by input shapes\n`);
  for (const k of r.kernelShapes ?? []) {
    process.stdout.write(`  ${k.ms.toFixed(1).padStart(8)} ${String(k.calls).padStart(6)} ${k.gflop.toFixed(3).padStart(9)}  ${k.name}\n`);
  }
}

function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
