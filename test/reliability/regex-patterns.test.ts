// Patterns read from files and flags (Hugging Face PEFT's target_modules,
// exclude_modules, modules_to_save, layers_pattern, feedforward_modules and
// the keys of rank_pattern/alpha_pattern; peftjs targets from flags, run.json
// and adapters) never backtrack: each hostile pattern, through every reader
// that takes one, returns or is refused within a second. A malformed pattern
// or a value of the wrong type is one PeftError naming the file and the key.
// The same through the CLI: `peft train --targets` and `peft train --adapter`
// with a hostile Hugging Face adapter exit 2 with one line.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as peftjs from '../../src/index.js';
import { PeftError } from '../../src/core/errors.js';
import { patternValue, peftSelectedModules } from '../../src/core/io/hf-peft.js';
import { serializeSafetensors } from '../../src/core/io/safetensors.js';
import { parseTarget, selectLinearSites } from '../../src/core/peft/site-selector.js';
import type { InjectionSite } from '../../src/core/peft/injection-site.js';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { createIa3 } from '../../examples/peftjs-ia3/index.js';
import { HangError, recordTable, withDeadline } from '../support/fuzz-harness.js';
import { inPool, peftTimed } from '../support/cli-timed.js';

/** Patterns whose backtracking is exponential (or a high polynomial) in the text's length. */
const HOSTILE = ['(.*.*)*X', '(a|.)*(b|.)*(c|.)*$X', '(.*){1,32}X', '((.*)*)*X', '(\\w+\\.?)*$X', '(x+x+)+y', '(.*\\.)*(.*\\.)*(.*\\.)*Z'];
const DEADLINE_MS = 1000;

const path = 'image_encoder.blocks.11.attn.qkv.lora_A.weights.and.some.more.components';
const site = (p: string, role: string): InjectionSite => ({ kind: 'linear', path: p, role, in: 8, out: 24, groups: ['q', 'k', 'v'] }) as unknown as InjectionSite;
const sites = Array.from({ length: 4 }, (_, i) => site(`image_encoder.blocks.${i}.attn.qkv.and.a.long.tail.of.names`, 'attn.qkv'));
const paths = [path, ...sites.map((s) => s.path)];

/** Every reader of a pattern, by name: a function of the pattern. */
const readers: [string, (p: string) => unknown][] = [
  ['target_modules (a regex)', (p) => peftSelectedModules({ target_modules: p }, paths, 'cfg.json')],
  ['exclude_modules (a regex)', (p) => peftSelectedModules({ target_modules: ['qkv'], exclude_modules: p }, paths, 'cfg.json')],
  ['modules_to_save', (p) => peftSelectedModules({ target_modules: ['qkv'], modules_to_save: [p] }, paths, 'cfg.json')],
  ['layers_pattern', (p) => peftSelectedModules({ target_modules: ['qkv'], layers_to_transform: [1], layers_pattern: [p] }, paths, 'cfg.json')],
  ['alpha_pattern / rank_pattern key', (p) => patternValue({ [p]: 2 }, path, "cfg.json: 'alpha_pattern'")],
  ['peftjs target /regex/', (p) => selectLinearSites(sites, [`/${p}/`], 'run.json')],
  ['IA3 feedforward_modules', (p) => ia3MethodConfig(p)],
];

/** The IA3 example's codec reading an adapter whose feedforward_modules is `p`. */
function ia3MethodConfig(p: string): unknown {
  const codec = createIa3(peftjs).ia3Method.hfPeft!;
  const adapter = {
    configPath: 'ia3/adapter_config.json',
    weightsPath: 'ia3/adapter_model.safetensors',
    config: { peft_type: 'IA3', target_modules: ['qkv'], feedforward_modules: p },
    peftType: 'IA3',
    tensors: new Map(),
    fail: (m: string) => {
      throw new PeftError(`ia3/adapter_config.json: ${m}`);
    },
    modulesWith: () => [],
    tensor: () => ({ dtype: 'F32', shape: [24, 1], bytes: new Uint8Array(96) }),
  };
  return codec.methodConfig(adapter as never, { all: sites, selected: sites });
}

describe('patterns from files never backtrack', () => {
  it(`${HOSTILE.length} hostile patterns x ${readers.length} readers: each returns or is refused within ${DEADLINE_MS} ms`, () => {
    const t0 = performance.now();
    const problems: string[] = [];
    const verdicts: ('accepted' | 'rejected' | 'failed')[] = [];
    for (const [name, read] of readers) {
      for (const p of HOSTILE) {
        const t = performance.now();
        try {
          withDeadline(() => read(p), DEADLINE_MS);
          verdicts.push('accepted');
        } catch (err) {
          if (err instanceof HangError) problems.push(`${name} ${JSON.stringify(p)}: no answer within ${DEADLINE_MS} ms`);
          else if (!(err instanceof PeftError)) problems.push(`${name} ${JSON.stringify(p)}: ${(err as Error).name}: ${(err as Error).message}`);
          verdicts.push(problems.length && problems.at(-1)!.startsWith(name) ? 'failed' : 'rejected');
        }
        if (performance.now() - t > DEADLINE_MS) problems.push(`${name} ${JSON.stringify(p)}: ${Math.round(performance.now() - t)} ms`);
      }
    }
    // a glob of many stars is one star
    const glob = withDeadline(() => parseTarget(`${'*'.repeat(60)}x`).test(site('a'.repeat(64), 'b'.repeat(64))), DEADLINE_MS);
    expect(glob).toBe(false);
    recordTable('patterns', 'hostile patterns in every reader return or are refused within 1 s', verdicts, (performance.now() - t0) / 1000);
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('a malformed pattern, or a value of the wrong type, is one line naming the file and the key', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => peftSelectedModules({ target_modules: '(' }, paths, 'a/adapter_config.json'), /^a\/adapter_config\.json: 'target_modules': '\(' is not a pattern peftjs reads \(missing closing \)/],
      [() => peftSelectedModules({ target_modules: 5 }, paths, 'a/adapter_config.json'), /^a\/adapter_config\.json: 'target_modules' must be a list of module names or a regular expression/],
      [() => peftSelectedModules({ target_modules: {} }, paths, 'a/adapter_config.json'), /^a\/adapter_config\.json: 'target_modules' must be/],
      [() => peftSelectedModules({ target_modules: [5] }, paths, 'a/adapter_config.json'), /^a\/adapter_config\.json: 'target_modules' must be/],
      [() => peftSelectedModules({ target_modules: ['qkv'], exclude_modules: '(?<=x)y' }, paths, 'a/adapter_config.json'), /'exclude_modules': '\(\?<=x\)y' is not a pattern peftjs reads/],
      [() => peftSelectedModules({ target_modules: ['qkv'], modules_to_save: ['a{1000}'] }, paths, 'a/adapter_config.json'), /'modules_to_save': 'a\{1000\}' is not a pattern peftjs reads \(the repetition \{1000\} counts above 100/],
      [() => patternValue({ '(': 2 }, path, "a/adapter_config.json: 'alpha_pattern'"), /^a\/adapter_config\.json: 'alpha_pattern' key: '\(' is not a pattern/],
      [() => patternValue(5 as never, path, "a/adapter_config.json: 'rank_pattern'"), /^a\/adapter_config\.json: 'rank_pattern': must be an object/],
      [() => patternValue(['x'] as never, path, "a/adapter_config.json: 'rank_pattern'"), /'rank_pattern': must be an object/],
      [() => selectLinearSites(sites, ['/(/'], 'run.json: method.config'), /^run\.json: method\.config: target '\/\(\/': '\(' is not a pattern peftjs reads/],
      [() => selectLinearSites(sites, ['/x/g'], 'run.json: method.config'), /flag 'g' is not one of i, m, s, u/],
      [() => selectLinearSites(sites, [5 as never], 'run.json: method.config'), /^run\.json: method\.config: a target must be a string, got 5/],
      [() => selectLinearSites(sites, { 0: 'x' } as never, 'run.json: method.config'), /^run\.json: method\.config: targets must be a list/],
      [() => selectLinearSites(sites, [`/${'a'.repeat(5000)}/`], 'run.json'), /5000 characters, more than 4096/],
      [() => ia3MethodConfig('('), /^ia3\/adapter_config\.json: 'feedforward_modules': '\(' is not a pattern/],
    ];
    const problems: string[] = [];
    for (const [run, want] of cases) {
      try {
        withDeadline(run, DEADLINE_MS);
        problems.push(`${want}: accepted`);
      } catch (err) {
        if (!(err instanceof PeftError)) problems.push(`${want}: ${(err as Error).name}: ${(err as Error).message}`);
        else if (!want.test(err.message)) problems.push(`${want}: got '${err.message}'`);
        else if (err.message.includes('\n')) problems.push(`${want}: more than one line`);
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('patterns keep their meaning: PEFT\'s rules and peftjs targets select what they did', () => {
    expect(peftSelectedModules({ target_modules: '.*\\.blocks\\.[02]\\..*' }, paths)).toEqual([sites[0]!.path, sites[2]!.path]);
    expect(patternValue({ 'attn\\.qkv\\.lora_A\\.weights\\.and\\.some\\.more\\.components': 3 }, path)).toBe(3);
    expect(patternValue({ 'blocks\\.11\\..*': 7 }, path)).toBe(7);
    expect(selectLinearSites(sites, ['/blocks\\.[13]\\./'], 'x').map((s) => s.site.path)).toEqual([sites[1]!.path, sites[3]!.path]);
    expect(selectLinearSites(sites, ['/BLOCKS\\.1\\./i'], 'x').map((s) => s.site.path)).toEqual([sites[1]!.path]);
    expect(selectLinearSites(sites, ['attn.*[q,v]'], 'x')[0]!.groups).toEqual([true, false, true]);
  });
});

describe('hostile patterns through the CLI', () => {
  it('peft train --targets and --adapter with catastrophic patterns exit 2 with one line, at once', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peft-regex-'));
    const data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 4, size: 64, seed: 1 });
    const hf = (name: string, config: Record<string, unknown>) => {
      const dir = join(tmp, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 4, ...config }));
      const entries = new Map([['base_model.model.x.lora_A.weight', { dtype: 'F32' as const, shape: [1], data: new Float32Array(1) }]]);
      writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(entries));
      return dir;
    };
    const train = (...a: string[]) => ['train', '--data-path', data, '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--steps', '1', '--out', join(tmp, 'runs'), ...a];
    const cases: [string[], RegExp][] = [
      [train('--targets', '/(.*.*)*X/'), /target '\/\(\.\*\.\*\)\*X\/' matches no site/],
      [train('--targets', '/(/'), /target '\/\(\/': '\(' is not a pattern peftjs reads/],
            // selected or not, the adapter's one tensor fits no site: what matters is the answer, at once
      [train('--adapter', hf('hf-target', { target_modules: '(.*.*)*X' })), /adapter_config\.json: /],
      [train('--adapter', hf('hf-exclude', { target_modules: ['qkv'], exclude_modules: '(.*.*)*X', alpha_pattern: { '(.*.*)*X': 2 } })), /adapter_config\.json: /],
      [train('--adapter', hf('hf-malformed', { target_modules: ['qkv'], exclude_modules: '(' })), /adapter_config\.json: 'exclude_modules': '\(' is not a pattern peftjs reads/],
      [train('--adapter', hf('hf-type', { target_modules: 5 })), /adapter_config\.json: 'target_modules' must be/],
    ];
    const runs = await inPool(cases, 2, ([args]) => peftTimed(args, { timeoutMs: 60_000 }));
    const problems: string[] = [];
    runs.forEach((r, i) => {
      const [args, want] = cases[i]!;
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('peft: error: '));
      if (r.timedOut) problems.push(`${args.slice(-2).join(' ')}: still running after 60 s`);
      else if (r.code !== 2 || lines.length !== 1 || !want.test(lines[0]!)) problems.push(`${args.slice(-2).join(' ')}: exit ${r.code}, stderr ${JSON.stringify(r.stderr.slice(0, 600))}`);
      else if (/\n\s+at /.test(r.stderr)) problems.push(`${args.slice(-2).join(' ')}: a stack trace`);
    });
    expect(problems, problems.join('\n')).toEqual([]);
  }, 240_000);
});
