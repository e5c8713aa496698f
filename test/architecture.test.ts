// The layers and the import direction (.dependency-cruiser.cjs, drawn in
// docs/architecture.md), and no import cycle anywhere, checked by
// dependency-cruiser over src, plugins, examples and test. A failure lists
// every violation, one line each (a cycle as its whole path).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Cruises `paths` under `baseDir` with the project's rules (and that folder's tsconfig). */
async function check(baseDir: string, paths: string[], tsConfigFile: string): Promise<ICruiseResult> {
  const options: ICruiseOptions = await extractDepcruiseOptions(join(root, '.dependency-cruiser.cjs'));
  options.baseDir = baseDir;
  options.tsConfig = { fileName: tsConfigFile };
  const tsConfig = extractTSConfig(join(baseDir, tsConfigFile));
  const { output } = await cruise(paths, options, {}, { tsConfig });
  if (typeof output === 'string') throw new Error(`dependency-cruiser returned text, not a result: ${output.slice(0, 200)}`);
  return output;
}

/** One line per violation: `rule: from → to`, or the cycle's path. */
function violations(result: ICruiseResult): string[] {
  return result.summary.violations.map((v) => {
    const path = v.cycle?.length ? [v.from, ...v.cycle.map((d) => d.name)].join(' → ') : `${v.from} → ${v.to}`;
    return `${v.rule.name}: ${path}`;
  });
}

describe('architecture (dependency-cruiser)', () => {
  it('src, plugins, examples and test keep the layers, import plugins only through the public API, and have no cycle', async () => {
    const result = await check(root, ['src', 'plugins', 'examples', 'test', 'vitest.config.ts'], 'tsconfig.test.json');
    // the graph is the real one: every layer was read and the `.js` specifiers resolved to the `.ts` files
    const modules = new Map(result.modules.map((m) => [m.source, m]));
    for (const file of ['src/accel/kernels/index.ts', 'src/core/registry/registry.ts', 'src/app/backend.ts', 'src/builtins.ts', 'plugins/method-lora/index.ts']) {
      expect(modules.has(file), `${file} was not cruised`).toBe(true);
    }
    expect(modules.get('src/builtins.ts')!.dependencies.map((d) => d.resolved)).toContain('src/core/registry/registry.ts');
    expect(result.summary.totalCruised).toBeGreaterThan(200);

    expect(violations(result), 'import rules broken (.dependency-cruiser.cjs says why each rule holds)').toEqual([]);
  });

  it('the build (tsconfig.json, what goes to dist/) compiles no test, test helper, example or script', () => {
    const parsed = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    });
    const files = parsed!.fileNames.map((f) => relative(root, f));
    expect(files).toContain('src/index.ts');
    expect(files.filter((f) => /\.test\.ts$/.test(f) || /^(test|examples|scripts)\//.test(f))).toEqual([]);
    // and what it compiles imports neither vitest nor test/: rules shipped-code-imports-no-test-runner and -helper above
  });

  describe('the rules catch what they are for', () => {
    // a small tree with one of each mistake, cruised with the same rules
    const dir = mkdtempSync(join(tmpdir(), 'peft-architecture-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = (path: string, text: string) => {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    };
    file('tsconfig.json', JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, paths: { peftjs: ['./src/index.ts'] } }, include: ['**/*.ts'] }));
    file('src/index.ts', "export * from './core/registry.js';\n");
    file('src/accel/kernel.ts', "import { registryName } from '../core/registry.js';\nexport const kernel = registryName;\n");
    // type-only both ways: erased by TypeScript, still a cycle
    file('src/core/registry.ts', "import type { Site } from './site.js';\nexport const registryName = 'r';\nexport type Registered = Site;\n");
    file('src/core/site.ts', "import type { Registered } from './registry.js';\nexport interface Site { of?: Registered }\n");
    file('src/core/names.ts', "import { register } from '../../plugins/method-x/index.js';\nexport const names = [register];\n");
    file('src/app/run.ts', "export const run = 1;\n");
    file('src/core/uses-app.ts', "import { run } from '../app/run.js';\nexport const used = run;\n");
    file('plugins/method-x/index.ts', "import { registryName } from '../../src/core/registry.js';\nimport { names } from '../method-y/index.js';\nexport const register = () => [registryName, names];\n");
    file('plugins/method-y/index.ts', "import { registryName } from '../../src/index.js';\nexport const names = [registryName];\n");
    // shipped code that needs the test runner or a test helper (node_modules is the project's, linked)
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
    file('test/support/toy.ts', "export const toy = 1;\n");
    file('src/core/testing-aid.ts', "import { expect } from 'vitest';\nimport { toy } from '../../test/support/toy.js';\nexport const aid = [expect, toy];\n");
    file('examples/ext/index.ts', "import { registryName } from '../../src/index.js';\nexport const name = registryName;\n");
    file('examples/ext/by-name.ts', "import { registryName } from 'peftjs';\nexport const name = registryName;\n");

    it('reports each broken rule, type-only cycles included', async () => {
      const found = violations(await check(dir, ['src', 'plugins', 'examples'], 'tsconfig.json'));
      expect(found).toEqual(
        expect.arrayContaining([
          'accel-imports-no-layer-above: src/accel/kernel.ts → src/core/registry.ts',
          'core-imports-no-layer-above: src/core/uses-app.ts → src/app/run.ts',
          'core-imports-no-layer-above: src/core/names.ts → plugins/method-x/index.ts',
          'src-imports-no-plugin: src/core/names.ts → plugins/method-x/index.ts',
          'plugins-import-only-the-public-api: plugins/method-x/index.ts → src/core/registry.ts',
          'plugins-import-only-the-public-api: plugins/method-x/index.ts → plugins/method-y/index.ts',
          'example-code-imports-no-repository-file: examples/ext/index.ts → src/index.ts',
          'shipped-code-imports-no-test-helper: src/core/testing-aid.ts → test/support/toy.ts',
        ]),
      );
      expect(found.filter((v) => v.startsWith('no-circular:')).join('\n')).toContain('src/core/site.ts');
      expect(found.filter((v) => v.startsWith('shipped-code-imports-no-test-runner: src/core/testing-aid.ts → '))).toHaveLength(1);
      // what is allowed stays allowed: a plugin through the public API, core within itself
      expect(found.filter((v) => v.includes('plugins/method-y/index.ts →') || v.includes('examples/ext/by-name.ts →'))).toEqual([]);
    });
  });
});
