// The layers of peftjs and the direction of their imports, checked by
// dependency-cruiser (test/architecture.test.ts runs it; so does
// `npx depcruise src plugins examples test`). docs/architecture.md draws them:
//
//   src/cli, src/commands        thin oclif commands
//   src/app                      backend choice, data, train, runs, report
//   src/core                     errors, nn, peft, registry, plugin loader, io, segment, parity, laws
//   src/accel                    wasm kernels, native bindings, backprop patches
//
// An import may only point down. The files directly in src/ sit on top:
// src/index.ts (the public API), src/builtins.ts (the registry with the
// built-in plugins) and the API's parts. plugins/* import only src/index.ts,
// and src/builtins.ts is the one file in src/ that imports plugins/.
//
// Test files (*.test.ts) are exempt from a layer rule only where the rule
// says so and why; no file is exempt from the cycle rule.

/** A test file: the tests are not part of the layer they sit in. */
const TEST = '\\.test\\.ts$';
/**
 * The top of src/, above every layer: the files directly in src/ (index.ts, the
 * public API barrel; builtins.ts, the registry with the built-ins; and the
 * API's parts beside them).
 */
const TOP = '^src/[^/]+\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'No import cycles, type-only imports included (tsPreCompilationDeps below keeps them in the graph). ' +
        'A type-only cycle costs nothing at run time, but it is the same knot for a reader and for the layers: ' +
        'the two files cannot be understood, moved or split apart, and the next value import along it becomes a ' +
        'run-time cycle (a module that reads another before it has finished evaluating). Tests are not exempt.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'accel-imports-no-layer-above',
      severity: 'error',
      comment:
        'src/accel is the bottom layer (kernels, native bindings, backprop patches): of peftjs it imports only ' +
        'itself (and packages: TensorFlow.js, the native addon). Its tests are exempt as far as src/core and src/app go: a kernel is checked against the ' +
        'library code it speeds up (nn layers, a training step).',
      from: { path: '^src/accel/', pathNot: TEST },
      to: { path: `^src/(core|app|cli|commands)/|${TOP}|^(plugins|examples)/` },
    },
    {
      name: 'core-imports-no-layer-above',
      severity: 'error',
      comment:
        'src/core (the library) never imports the application, the commands, the public API barrel or a plugin. ' +
        'Its tests are exempt as far as src/app and src/index.ts go: a test may start a backend, train a few ' +
        'steps through src/app, or play the host that hands plugins the public API.',
      from: { path: '^src/core/', pathNot: TEST },
      to: { path: `^src/(app|cli|commands)/|${TOP}|^(plugins|examples)/` },
    },
    {
      name: 'app-imports-no-layer-above',
      severity: 'error',
      comment:
        'src/app (backend, data, train, runs, report) never imports the commands, the public API barrel or a ' +
        'plugin: it is handed a Registry. Its tests are exempt as far as src/index.ts goes (as for core).',
      from: { path: '^src/app/', pathNot: TEST },
      to: { path: `^src/(cli|commands)/|${TOP}|^(plugins|examples)/` },
    },
    {
      name: 'cli-imports-no-command',
      severity: 'error',
      comment: 'src/cli is what the commands share (base class, flags, tables); a command is a leaf nobody imports.',
      from: { path: '^src/(cli|core|app|accel)/' },
      to: { path: '^src/commands/' },
    },
    {
      name: 'library-tests-import-no-cli',
      severity: 'error',
      comment:
        'Tests of accel, core and app stay below the commands too: a command is tested through the CLI, in test/.',
      from: { path: `^src/(accel|core|app)/.*${TEST}` },
      to: { path: '^src/cli/' },
    },
    {
      name: 'src-imports-no-plugin',
      severity: 'error',
      comment:
        'Nothing in src/ except src/builtins.ts imports plugins/: core knows no built-in method or backbone by ' +
        'name. Tests under src/ are not exempt (issue #14: a test that needs the built-ins lives beside the ' +
        'plugin or in test/).',
      from: { path: '^src/', pathNot: '^src/builtins\\.ts$' },
      to: { path: '^(plugins|examples)/' },
    },
    {
      name: 'src-tests-import-no-builtins',
      severity: 'error',
      comment:
        'src/builtins.ts is the built-in plugins by another door: a test under src/accel, src/core or src/app that ' +
        'loads them moves beside the plugin or to test/ (the commands, which run with the built-ins, may).',
      from: { path: `^src/(accel|core|app)/.*${TEST}` },
      to: { path: '^src/builtins\\.ts$' },
    },
    {
      name: 'plugins-import-only-the-public-api',
      severity: 'error',
      comment:
        'A built-in plugin is written as an external one would be: from src/ it imports src/index.ts (the public ' +
        'API) and nothing else, and it imports no other plugin. Its tests are exempt from the src/ part only: ' +
        'they may check an internal the plugin relies on (e.g. that the native kernel it calls through the API ' +
        'is the one that runs), but not another plugin.',
      from: { path: '^plugins/([^/]+)/', pathNot: TEST },
      to: {
        path: '^(src/|plugins/|examples/|test/)',
        pathNot: ['^src/index\\.ts$', '^plugins/$1/'],
      },
    },
    {
      name: 'plugin-tests-import-no-other-plugin',
      severity: 'error',
      comment: "A plugin's tests import its own files, the public API, src/ internals and test/support, but no other plugin (a test of two plugins together loads them through src/builtins.ts).",
      from: { path: `^plugins/([^/]+)/.*${TEST}` },
      to: { path: '^(plugins|examples)/', pathNot: '^plugins/$1/' },
    },
    {
      name: 'examples-import-only-the-public-api',
      severity: 'error',
      comment:
        'An example is an external package: its code reaches peftjs only through the API the host hands to ' +
        "register(registry, api) (or `import 'peftjs'`), never a file of this repository. Its tests play the " +
        'host: they may import src/index.ts (the API handed to the plugin) and src/builtins.ts (the registry the ' +
        'CLI has, with the built-in backbones to adapt), but no internal file and no other package.',
      from: { path: '^examples/([^/]+)/' },
      to: {
        path: '^(src/|plugins/|test/|examples/)',
        pathNot: ['^examples/$1/', TOP],
      },
    },
    {
      name: 'example-code-imports-no-repository-file',
      severity: 'error',
      comment:
        "An example's own code (not its tests) imports not even src/index.ts by path: a published package has no " +
        "path to the host's source. It may name its peer dependency, `import('peftjs')` (tsconfig.test.json maps " +
        'that name to src/index.ts, so the edge is there, marked as aliased).',
      from: { path: '^examples/([^/]+)/', pathNot: TEST },
      to: { path: '^src/', dependencyTypesNot: ['aliased-tsconfig-paths'] },
    },
    {
      name: 'shipped-code-imports-no-test-helper',
      severity: 'error',
      comment: 'test/ (test/support and the suites) is not compiled into dist: code that ships may not import it.',
      from: { path: '^(src|plugins|examples)/', pathNot: TEST },
      to: { path: '^test/' },
    },
    {
      name: 'shipped-code-imports-no-test-runner',
      severity: 'error',
      comment: 'vitest is a dev dependency: a file compiled into dist that imports it breaks every installed copy.',
      from: { path: '^(src|plugins)/', pathNot: TEST },
      to: { path: 'node_modules/vitest/' },
    },
    {
      name: 'no-unresolvable-import',
      severity: 'error',
      comment: 'An import dependency-cruiser cannot resolve is one whose layer it cannot check (or a typo).',
      from: {},
      // not resolvable here, on purpose: 'peftjs' (the examples' peer dependency, the host at run time), the
      // optional backends and addon (absent unless installed), and package.json read relative to dist/
      to: { couldNotResolve: true, pathNot: ['^peftjs$', '^@tensorflow/tfjs-node(-gpu)?$', '^@peftjs/native$', '(^|/)package\\.json$'] },
    },
  ],
  options: {
    // follow imports into node_modules only to name the package (the vitest rule), not through it
    doNotFollow: { path: 'node_modules' },
    // keep `import type` and type-only specifiers in the graph: without this they vanish before the check
    // (TypeScript erases them), and a type-only cycle would go unseen
    tsPreCompilationDeps: true,
    // tsconfig.test.json covers src, plugins, test and the examples' tests; it resolves the `.js` specifiers
    // of NodeNext to the `.ts` files
    tsConfig: { fileName: 'tsconfig.test.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.d.ts', '.js', '.mjs', '.cjs', '.json'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    // dist/ is compiled output; node_modules stays in the graph as leaves (doNotFollow), so the vitest rule sees it
    exclude: { path: '^(dist|\\.cache)/' },
    skipAnalysisNotInRules: false,
  },
};
