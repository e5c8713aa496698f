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
//            --wasm    also run each case once with PEFT_NATIVE=0 (the wasm backend alone): "wasm ms" columns
//            --markdown   print the table as Markdown (for docs/performance.md)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCase, type CaseResult } from './case.js';
import { measureMachinePeak, type MachinePeak } from './peak.js';
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
  /** Also run each case once on the wasm backend alone (PEFT_NATIVE=0). */
  wasm: boolean;
  markdown: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { workloads: [], methods: [], steps: 5, forwards: 3, kernels: false, json: false, torch: false, rounds: 1, wasm: false, markdown: false };
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
      case '--wasm':
        args.wasm = true;
        break;
      case '--markdown':
        args.markdown = true;
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
          'usage: npm run bench -- [--workload w1,w2] [--method lora,adapter,adalora] [--backend wasm] [--backprop core|low-memory|engine] [--steps 5] [--forwards 3] [--kernels] [--json] [--out file.json] [--torch] [--rounds 1] [--wasm] [--markdown]\n',
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
  /** One image (batch 1), as ours. */
  inferenceMs?: number;
  peakRssMB?: number;
  threads?: number;
  countsMatch?: boolean;
  error?: string;
}

/** One round of a case repeated with --rounds: our step ms and the reference's. */
interface Round {
  stepMs?: number;
  torchMs?: number;
  inferMs?: number;
  torchInferMs?: number;
}

type Row = (CaseResult | { workload: string; method: string; error: string }) & {
  torch?: TorchFigures;
  rounds?: Round[];
  /** With --wasm: the same case on the wasm backend alone (one run). */
  wasmAlone?: { stepMs: number; inferenceMs: number; peakRssMB: number } | { error: string };
};

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
  // the same OpenBLAS kernels as ours: the addon's loader picks them for a CPU OpenBLAS does not know
  // (native/coretype.js); PyTorch links the same OpenBLAS and would otherwise run its SSE3 kernels
  const core = torchCoreType();
  const env = { ...process.env, ...(torchThreads ? { OPENBLAS_NUM_THREADS: '1' } : {}), ...(core ? { OPENBLAS_CORETYPE: core } : {}) };
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
    return { stepMs: t.stepMs, stepCpuMs: t.stepCpuMs, inferenceMs: t.inferenceMs, peakRssMB: t.peakRssMB, threads: t.threads, countsMatch: t.countsMatch };
  } catch {
    return { error: stderr.split('\n').filter(Boolean).slice(-2).join(' | ').slice(0, 300) || `exit ${r.status}` };
  }
}

/** The OPENBLAS_CORETYPE our addon's loader would set on this machine (undefined: OpenBLAS chooses). */
function torchCoreType(): string | undefined {
  if (process.env.OPENBLAS_CORETYPE) return process.env.OPENBLAS_CORETYPE;
  try {
    const { chooseCoreType } = createRequire(import.meta.url)(resolve(benchDir, '../../native/coretype.js')) as {
      chooseCoreType(): { coretype: string } | undefined;
    };
    return chooseCoreType()?.coretype;
  } catch {
    return undefined;
  }
}

function runChild(workload: string, method: string, args: Args, env: NodeJS.ProcessEnv = process.env): CaseResult | { workload: string; method: string; error: string } {
  const argv = [launcher, '--no-build', '--workload', workload, '--method', method, '--json', '--steps', String(args.steps), '--forwards', String(args.forwards)];
  if (args.backend) argv.push('--backend', args.backend);
  if (args.kernels) argv.push('--kernels');
  if (args.backprop) argv.push('--backprop', args.backprop);
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 2 ** 20, env });
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
    rounds.push({
      stepMs: r.stepMs,
      inferMs: r.inferenceMs,
      ...(t?.stepMs !== undefined ? { torchMs: t.stepMs } : {}),
      ...(t?.inferenceMs !== undefined ? { torchInferMs: t.inferenceMs } : {}),
    });
  }
  if (failed || ours.length === 0) return failed ?? { workload: w, method: m, error: 'no round ran' };
  const row: Row = {
    ...ours[0]!,
    stepMs: median(ours.map((r) => r.stepMs)),
    stepCpuMs: median(ours.map((r) => r.stepCpuMs)),
    inferenceMs: median(ours.map((r) => r.inferenceMs)),
    peakRssMB: Math.max(...ours.map((r) => r.peakRssMB)),
  };
  const timed = theirs.filter((t) => t.stepMs !== undefined);
  if (timed.length) {
    row.torch = {
      ...timed[0]!,
      stepMs: median(timed.map((t) => t.stepMs!)),
      stepCpuMs: median(timed.map((t) => t.stepCpuMs!)),
      inferenceMs: median(timed.map((t) => t.inferenceMs ?? NaN)),
      peakRssMB: Math.max(...timed.map((t) => t.peakRssMB ?? NaN)),
    };
  } else if (theirs.length) row.torch = theirs[0];
  if (args.rounds > 1) row.rounds = rounds;
  if (args.wasm) {
    const r = runChild(w, m, args, { ...process.env, PEFT_NATIVE: '0' });
    row.wasmAlone = 'error' in r ? { error: r.error } : { stepMs: r.stepMs, inferenceMs: r.inferenceMs, peakRssMB: r.peakRssMB };
  }
  return row;
}

/** A ratio `ours / theirs` to 2 decimals, with the rounds' own ratios' range when there are several. */
function ratioCell(ours: number | undefined, theirs: number | undefined, each: number[] = []): string {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs) || theirs <= 0) return '-';
  const range = each.length > 1 ? ` (${Math.min(...each).toFixed(2)}-${Math.max(...each).toFixed(2)})` : '';
  return (ours / theirs).toFixed(2) + range;
}

function backendLabel(r: CaseResult): string {
  return (
    r.backend +
    (r.wasm ? (r.wasm.simd ? '+simd' : '') + (r.wasm.threads ? '+threads' : '') + (r.fastPaths ? '' : ' (stock)') : '') +
    (r.native?.active ? ' +native' : '') +
    (r.backprop === 'low-memory' ? ' lowmem' : '')
  );
}

/** The results as a table (plain, aligned; or Markdown), `peak` for the "% peak" column. */
function table(results: Row[], peak: MachinePeak | undefined, markdown = false): string {
  const withTorch = results.some((r) => r.torch);
  const withWasm = results.some((r) => r.wasmAlone);
  const cols: { head: string; cell: (r: CaseResult & Row) => string }[] = [
    { head: 'workload', cell: (r) => r.workload },
    { head: 'method', cell: (r) => r.method },
    { head: 'backend', cell: (r) => backendLabel(r) },
    { head: 'step ms', cell: (r) => r.stepMs.toFixed(0) },
  ];
  const torchOk = (r: Row): TorchFigures | undefined => (r.torch?.stepMs !== undefined ? r.torch : undefined);
  const rounds = (r: Row, a: keyof Round, b: keyof Round): number[] =>
    (r.rounds ?? []).filter((x) => x[a] !== undefined && x[b] !== undefined).map((x) => x[a]! / x[b]!);
  if (withTorch) {
    cols.push(
      { head: 'torch ms', cell: (r) => (torchOk(r) ? `${r.torch!.stepMs!.toFixed(0)} (${r.torch!.threads}t)${r.torch!.countsMatch === false ? ' !params' : ''}` : r.torch?.error ? 'error' : '-') },
      { head: 'x torch', cell: (r) => ratioCell(r.stepMs, torchOk(r)?.stepMs, rounds(r, 'stepMs', 'torchMs')) },
    );
  } else {
    cols.push({ head: 'step cpu ms', cell: (r) => r.stepCpuMs.toFixed(0) }, { head: 'first ms', cell: (r) => r.firstStepMs.toFixed(0) });
  }
  cols.push({ head: 'infer ms', cell: (r) => r.inferenceMs.toFixed(0) });
  if (withTorch) {
    cols.push(
      { head: 'torch infer ms', cell: (r) => (torchOk(r)?.inferenceMs !== undefined ? r.torch!.inferenceMs!.toFixed(0) : '-') },
      { head: 'x torch', cell: (r) => ratioCell(r.inferenceMs, torchOk(r)?.inferenceMs, rounds(r, 'inferMs', 'torchInferMs')) },
    );
  }
  cols.push({ head: 'GFLOP/step', cell: (r) => r.stepGflop.toFixed(2) }, { head: 'GFLOP/s', cell: (r) => r.gflops.toFixed(1) });
  if (peak) cols.push({ head: '% peak', cell: (r) => ((100 * r.gflops) / peak.allThreads).toFixed(0) });
  cols.push({ head: 'peak RSS MB', cell: (r) => r.peakRssMB.toFixed(0) });
  if (withTorch) cols.push({ head: 'torch RSS MB', cell: (r) => (torchOk(r)?.peakRssMB !== undefined ? r.torch!.peakRssMB!.toFixed(0) : '-') });
  else cols.push({ head: 'peak tensor MB', cell: (r) => r.peakTensorMB.toFixed(0) });
  if (withWasm) {
    const wasm = (r: Row) => (r.wasmAlone && !('error' in r.wasmAlone) ? r.wasmAlone : undefined);
    cols.push({ head: 'wasm ms', cell: (r) => (wasm(r) ? wasm(r)!.stepMs.toFixed(0) : r.wasmAlone ? 'error' : '-') });
    if (withTorch) cols.push({ head: 'wasm x torch', cell: (r) => ratioCell(wasm(r)?.stepMs, torchOk(r)?.stepMs) });
  }
  cols.push({ head: 'leak', cell: (r) => String(r.tensorsLeaked) });
  const head = cols.map((c) => c.head);
  const rows = results.map((r) => ('error' in r ? [r.workload, r.method, 'error: ' + r.error] : cols.map((c) => c.cell(r as CaseResult & Row))));
  if (markdown) {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    const align = cols.map((_, i) => (i < 3 ? '---' : '---:'));
    return [line(head), line(align), ...rows.map(line)].join('\n');
  }
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
      process.stdout.write(table([row], undefined, args.markdown) + '\n');
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
  // the machine's peak, measured after the cases (on the idle machine, as they were)
  const peak = measureMachinePeak();
  const out = args.out ?? resolve(benchDir, 'out/latest.json');
  writeJson(out, { peak, results });
  if (args.json) process.stdout.write(JSON.stringify({ peak, results }) + '\n');
  else {
    process.stdout.write(table(results, peak, args.markdown) + '\n');
    if (peak) {
      process.stdout.write(
        `peak: a 1536³ float32 product on the native addon: ${peak.oneThread.toFixed(0)} GFLOP/s on 1 thread, ${peak.allThreads.toFixed(0)} on ${peak.threads} (${peak.blasCore}); % peak = GFLOP/s over the ${peak.threads}-thread figure\n`,
      );
    }
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
  if (!r.inferenceKernels) return;
  process.stdout.write(`\n${r.workload} ${r.method}: kernels of one profiled inference forward, batch 1 (ms, calls, GFLOP)\n`);
  for (const k of r.inferenceKernels) {
    process.stdout.write(`  ${k.name.padEnd(36)} ${k.ms.toFixed(1).padStart(8)} ${String(k.calls).padStart(6)} ${k.gflop.toFixed(3).padStart(9)}\n`);
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
