// `peft verify` on broken external plugins, as their author runs it: a folder
// with a package.json, loaded with --plugin through the compiled CLI (built by
// `npm run build`). A layer that unfreezes the base weight it wraps makes
// verify exit 1 naming the tensor; a default outside its own bounds is refused
// when the plugin registers, naming the key, and the method is then unknown.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'peft-verify-broken-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function peft(...args: string[]) {
  const env = { ...process.env, PEFT_BACKEND: 'cpu', PEFT_PLUGINS: '', PEFT_CONFIG_DIR: join(tmp, 'config') };
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A plugin folder: package.json naming index.js, which registers `method` (JS source using `peftjs`). */
function pluginFolder(name: string, method: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '0.0.1', type: 'module', peftjs: { register: './index.js' } }));
  writeFileSync(join(dir, 'index.js'), `export function register(registry, peftjs) {\n${method}\n}\n`);
  return dir;
}

// A learned output gain, y = linear(x) (1 + gain), whose layer also sets the
// wrapped base weight trainable: the mistake the laws must name.
const unfreezingGain = `
  const { Module, linear, selectLinearSites, tf, z } = peftjs;
  class Gain extends Module {
    constructor(base) {
      super();
      const weight = this.adoptParameter('weight', base.param('weight'));
      if (base.hasParam('bias')) this.adoptParameter('bias', base.param('bias'));
      [this.outFeatures, this.inFeatures] = weight.shape;
      this.registerParameter('gain', tf.zeros([this.outFeatures]));
      weight.trainable = true;
    }
    forward(x) {
      return tf.tidy(() => {
        const bias = this.hasParam('bias') ? this.param('bias').variable : undefined;
        return tf.mul(linear(x, this.param('weight').variable, bias), tf.add(this.param('gain').variable, 1));
      });
    }
  }
  const schema = z.strictObject({ targets: z.array(z.string()).default(['mlp.fc1']).describe('sites to scale') });
  registry.registerMethod({
    id: 'unfreezing_gain',
    summary: 'a learned output gain that also trains the base weight',
    schema,
    create: (config) => ({
      id: 'unfreezing_gain',
      config,
      select: (sites) => selectLinearSites(sites, config.targets, "method 'unfreezing_gain'").map((s) => s.site),
      inject: (model, site) => model.setModule(site.path, new Gain(model.getModule(site.path))),
      parameterCount: (site) => site.out,
    }),
  });`;

describe('peft verify on a broken external plugin', () => {
  it('exits 1 when a layer unfreezes the base, naming the tensor', () => {
    const dir = pluginFolder('peftjs-unfreezing-gain', unfreezingGain);
    const r = peft('verify', 'unfreezing_gain', '--plugin', dir, '--runs', '3', '--seed', '1');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^✗ compose: only the method's own tensors train.*: base tensor\(s\) trainable after compose: 'blocks\.0\.mlp\.fc1\.weight' \[\d+,\d+\]/m);
    expect(r.stdout).toMatch(/^✗ parameter counts .*not expected 'blocks\.0\.mlp\.fc1\.weight'/m);
    expect(r.stdout).toMatch(/^\d+ passed, [1-9]\d* failed, \d+ skipped$/m);
    expect(r.stdout).toContain('replay with: peft verify unfreezing_gain --seed 1 --runs 3');
  });

  it('peft plan warns about the base tensor it would train, naming the tensor', () => {
    const dir = join(tmp, 'peftjs-unfreezing-gain');
    const r = peft('plan', '--backbone', 'sam', '--preset', 'tiny', '--method', 'unfreezing_gain', '--plugin', dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^peft: warning: method 'unfreezing_gain' leaves \d+ base tensor\(s\) trainable that it does not declare \('image_encoder\.blocks\.0\.mlp\.lin1\.weight'/m);
    const plain = peft('plan', '--backbone', 'sam', '--preset', 'tiny', '--method', 'lora');
    expect(plain.stderr).not.toContain('warning');
  });

  it('refuses a plugin whose default is outside its own bounds, naming the key', () => {
    const dir = pluginFolder(
      'peftjs-bad-default',
      `registry.registerMethod({ id: 'bad_default', summary: 's', schema: peftjs.z.strictObject({ rank: peftjs.z.number().int().min(1).default(0) }), create: () => { throw new Error('unused'); } });`,
    );
    const r = peft('verify', 'bad_default', '--plugin', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/plugin 'peftjs-bad-default' failed to load: method 'bad_default': the default of config key 'rank' \(0\) is outside its own bounds: .*>=1/);
  });
});
