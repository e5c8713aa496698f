import { Flags } from '@oclif/core';
import { basename, resolve, join } from 'node:path';
import { BaseCommand } from '../cli/base-command.js';
import { backboneFlags, backboneOverrides, methodFlagValues, methodFlags, runLengthFlags } from '../cli/model-flags.js';
import { ProgressLine, duration } from '../cli/progress.js';
import { PeftError } from '../core/errors.js';
import { lossNames } from '../app/train/losses.js';
import { checkLrSchedule, lrSchedules } from '../app/train/lr-schedule.js';
import { promptModes, type PromptMode } from '../app/train/prompts.js';
import type { RunSpec } from '../app/runs/run-spec.js';
import type { RunRequest } from '../app/runs/run-request.js';
import { describeRecipe } from '../app/runs/recipe.js';
import { nativeStatus } from '../accel/native/index.js';
import { nativeOffNotice } from '../accel/native/notice.js';
import { trainRun } from '../app/runs/train-run.js';
import type { ResumeFlags } from '../app/runs/resume-request.js';
import { FLAG_LIMITS, integerFlag, pathFlag } from '../cli/flag-values.js';

/** The flags --resume checks against the run, or applies (--steps, --epochs, --save-every, --vis); --lr and the method flags are added parsed. */
const RESUME_FLAGS = ['backbone', 'preset', 'image-size', 'method', 'checkpoint', 'adapter', 'freeze-decoder', 'out-size', 'dataset', 'data-path', 'val-path', 'augment', 'batch', 'lr-schedule', 'epochs', 'steps', 'val-every', 'seed', 'loss', 'prompt', 'save-every', 'vis'] as const;
import { parentLink } from '../cli/parent-link.js';

/** A run name is one plain folder under --out. */
function checkRunName(name: string): void {
  if (!name.trim() || /[\\/]|^\.\.?$/.test(name)) throw new PeftError(`--exp-name '${name}' must be a plain folder name`);
}

export default class Train extends BaseCommand {
  static override summary = 'Fine-tune a backbone with a PEFT method for segmentation, and report Dice, IoU and memory.';
  static override description = `Composes a backbone with a PEFT method, trains the method's parameters (and the mask decoder) with Adam, validates every --val-every epochs, keeps the best and the last checkpoint, and prints a summary. Without --data-path it trains on a small synthetic fundus dataset in the REFUGE layout, generated once into a cache.

Medical-SAM-Adapter's spellings work too: -net mobile_sam -mod sam_lora -image_size 256 -exp_name x -sam_ckpt f.pt`;
  static override examples = [
    '<%= config.bin %> train',
    '<%= config.bin %> train --backbone sam --preset tiny --method adapter --epochs 3',
    '<%= config.bin %> train -net mobile_sam -mod sam_lora -image_size 256 -exp_name x -sam_ckpt mobile_sam.pt --data-path data/REFUGE',
  ];
  static override flags = {
    ...backboneFlags,
    ...methodFlags,
    'out-size': integerFlag({ min: 1, max: FLAG_LIMITS.imageSize.max })({ description: 'target (and metric) resolution; default: the mask decoder output, image size / 4', aliases: ['out_size'] }),
    ...runLengthFlags,
    // no static defaults: what the user leaves unset comes from the recipe (src/app/runs/recipe.ts)
    lr: Flags.string({ description: "Adam learning rate (default: the recipe's: the backbone's from-scratch rate without --checkpoint, 1e-4 with it)" }),
    'lr-schedule': Flags.string({ description: `learning rate over the run: ${lrSchedules.join(', ')} (cosine decays to 0 at the last step; default: the recipe's, constant with --checkpoint)`, aliases: ['lr_schedule'] }),
    checkpoint: pathFlag({ description: 'official backbone weights (.safetensors, .pt, .pth)', aliases: ['sam-ckpt', 'sam_ckpt'] }),
    adapter: pathFlag({ description: 'start from this adapter folder (peftjs, or Hugging Face PEFT for a method with a codec): its method, config and whether the mask decoder trains (modules_to_save), overridable by --rank/--set…/--[no-]freeze-decoder' }),
    dataset: Flags.string({ description: 'refuge (folder layout) or isic (CSV)', default: 'refuge', options: ['refuge', 'isic', 'REFUGE', 'ISIC'] }),
    'data-path': pathFlag({ description: 'dataset root (refuge) or training CSV (isic); default: embedded synthetic data', aliases: ['data_path'] }),
    'val-path': pathFlag({ description: 'validation CSV (isic)' }),
    out: pathFlag({ description: 'folder of runs', default: 'runs' }),
    'exp-name': Flags.string({ description: 'run name (folder under --out)', aliases: ['exp_name'] }),
    'val-every': integerFlag(FLAG_LIMITS.count)({ description: 'validate every k epochs (0: only at the end)', default: 1, aliases: ['val_freq', 'val-freq'] }),
    seed: integerFlag(FLAG_LIMITS.integer)({ description: 'random seed (data order, augmentation, prompts, initialisation)', default: 0 }),
    loss: Flags.string({ description: `loss: ${lossNames.join(', ')}`, default: 'bce' }),
    prompt: Flags.string({ description: `prompt: ${promptModes.join(', ')}`, default: 'click' }),
    augment: Flags.boolean({ description: 'seeded flips, small affine and colour jitter on training images', default: false }),
    'freeze-decoder': Flags.boolean({ description: 'train only the method parameters, not the mask decoder (default: train it, or, with --adapter, as the adapter did); --no-freeze-decoder trains it', allowNo: true }),
    'save-every': integerFlag(FLAG_LIMITS.count)({ description: 'also write the last checkpoint every n steps', default: 0 }),
    vis: integerFlag(FLAG_LIMITS.positive)({ description: 'every N validation batches, write a panel (image | ground truth | prediction per class, with Dice) to <run>/vis/epoch-<e>-batch-<b>.png, as Medical-SAM-Adapter\'s -vis' }),
    resume: Flags.boolean({ description: "continue the run in --out/--exp-name from its last checkpoint; a flag that contradicts the run is an error, --steps/--epochs change its length (said in one line), --save-every/--vis apply from there" }),
  };

  async run(): Promise<void> {
    const { flags, metadata } = await this.parse(Train);
    const lr = flags.lr === undefined ? undefined : Number(flags.lr);
    if (lr !== undefined && !(lr > 0 && Number.isFinite(lr))) throw new PeftError(`--lr must be a positive number, got '${flags.lr}'`);
    if (!lossNames.includes(flags.loss as never)) throw new PeftError(`unknown --loss '${flags.loss}': choose ${lossNames.join(', ')}`);
    if (!promptModes.includes(flags.prompt as PromptMode)) throw new PeftError(`unknown --prompt '${flags.prompt}': choose ${promptModes.join(', ')}`);
    const backend = await this.backend(flags.backend);
    const registry = await this.registry();
    if (flags.resume && !flags['exp-name']) throw new PeftError('--resume needs --exp-name: the run to continue');
    // on --resume, the flags the user gave (not oclif's defaults) are checked against the run (app/runs/resume-request.ts)
    const given = <K extends keyof typeof flags>(name: K) => (metadata.flags[name as string]?.setFromDefault ? undefined : flags[name]);
    const resumeFlags: ResumeFlags = {
      ...Object.fromEntries(RESUME_FLAGS.map((f) => [f, given(f)]).filter(([, v]) => v !== undefined)),
      ...(lr !== undefined ? { lr } : {}),
      methodFlags: methodFlagValues(flags),
    };
    if (flags['exp-name'] !== undefined) checkRunName(flags['exp-name']);
    // the default name needs the preset and method the run resolves to (an adapter brings its own method)
    const name = (spec: RunSpec) => flags['exp-name'] ?? `${spec.backbone.id}-${spec.backbone.preset}-${spec.method.id}-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`;
    const request: RunRequest = {
      backbone: { id: flags.backbone, preset: flags.preset, overrides: backboneOverrides(registry.backbone(flags.backbone), flags) },
      method: { id: flags.method, flags: methodFlagValues(flags) },
      checkpoint: flags.checkpoint ? resolve(flags.checkpoint) : undefined,
      adapter: flags.adapter ? resolve(flags.adapter) : undefined,
      // unset: the mask decoder trains, or, with --adapter, as the adapter says
      trainDecoder: flags['freeze-decoder'] === undefined ? undefined : !flags['freeze-decoder'],
      outSize: flags['out-size'],
      dataset: {
        kind: flags.dataset.toLowerCase() as 'refuge' | 'isic',
        path: flags['data-path'] ? resolve(flags['data-path']) : null,
        valPath: flags['val-path'] ? resolve(flags['val-path']) : null,
      },
      augment: flags.augment,
      options: {
        batch: flags.batch,
        lr,
        epochs: flags.epochs,
        steps: flags.steps,
        valEvery: flags['val-every'],
        seed: flags.seed,
        loss: flags.loss,
        prompt: flags.prompt as PromptMode,
        saveEvery: flags['save-every'],
        vis: flags.vis,
        lrSchedule: flags['lr-schedule'] === undefined ? undefined : checkLrSchedule(flags['lr-schedule']),
      },
      command: `peft ${process.argv.slice(2).join(' ')}`,
    };
    const runDir = flags.resume ? resolve(flags.out, flags['exp-name']!) : (spec: RunSpec) => resolve(flags.out, name(spec));
    let stop = false;
    const onSignal = (sig: string) => {
      if (stop) process.exit(130);
      stop = true;
      process.stderr.write(`\n${sig}: saving the last checkpoint and stopping (again to quit at once)\n`);
    };
    const sigint = () => onSignal('SIGINT');
    const sigterm = () => onSignal('SIGTERM');
    process.on('SIGINT', sigint);
    process.on('SIGTERM', sigterm);
    // started by `peft sweep` or `peft worker`: report progress to it, and stop if it dies
    const parent = parentLink(() => onSignal('the sweep process that started this run exited'));
    let progress: ProgressLine | undefined;
    try {
      const s = await trainRun(
        registry,
        request,
        runDir,
        {
          onRecipe: (recipe) => this.log(describeRecipe(recipe)),
          onResumeChanges: (lines) => lines.forEach((line) => this.log(`resume: ${line}`)),
          onReady: ({ spec: sp, report, trainSize, valSize, dataRoot, runDir: dir }) => {
            this.log(`${sp.backbone.id} (${sp.backbone.preset}, ${sp.imageSize} px) + ${sp.method.id}: ${report.trainableParameters.toLocaleString('en')} trainable of ${report.totalParameters.toLocaleString('en')} parameters, ${report.sites.length} sites`);
            this.warnUndeclaredTrainable(report);
            this.log(`data: ${dataRoot} (${trainSize} train, ${valSize} validation), backend ${backend.active}, run ${dir}`);
            // a failed native build would otherwise only show as a 3-4x slower run
            const notice = nativeOffNotice(nativeStatus(), backend.active);
            if (notice) this.warnLine(notice);
          },
          onStep: (e) => {
            parent?.progress(e.step, e.totalSteps);
            progress ??= new ProgressLine(e.totalSteps);
            progress.update(e.step, { loss: e.loss.toFixed(4), ...(e.lastDice !== undefined ? { dice: e.lastDice.toFixed(3) } : {}), 'ms/step': String(Math.round(e.ms)) });
          },
          onValidation: (e) => {
            const d = Object.entries(e.result.dice).map(([c, v]) => `${c} ${v.toFixed(3)}`).join(', ');
            (progress ?? { note: (l: string) => this.log(l) }).note(`epoch ${e.epoch} (step ${e.step}): dice ${d}${e.best ? '  (best)' : ''}`);
          },
          shouldStop: () => stop,
          onLockTakeover: (line) => this.warnLine(line),
        },
        flags.resume ? resumeFlags : false,
      );
      progress?.done();
      const lines: string[] = [];
      if (s.stoppedEarly) lines.push(`stopped at step ${s.steps}; the last checkpoint is saved: continue with --resume --exp-name ${basename(s.runDir)}`);
      if (s.final) {
        const classes = Object.keys(s.final.dice);
        const mean = (r: Record<string, number>) => classes.reduce((a, c) => a + r[c]!, 0) / classes.length;
        lines.push(
          `Dice  ${classes.map((c) => `${c} ${s.final!.dice[c]!.toFixed(4)}`).join('  ')}  mean ${mean(s.final.dice).toFixed(4)}`,
          `mIoU  ${classes.map((c) => `${c} ${s.final!.iou[c]!.toFixed(4)}`).join('  ')}  mean ${mean(s.final.iou).toFixed(4)}`,
        );
      }
      lines.push(
        `memory: peak RSS ${(s.peakRss / 2 ** 20).toFixed(0)} MB, peak tensors ${(s.peakTensorBytes / 2 ** 20).toFixed(0)} MB`,
        `time: ${duration(s.seconds)} for ${s.steps} steps (${s.steps ? Math.round((s.seconds * 1000) / s.steps) : 0} ms/step)`,
        `saved: ${s.runDir} (best: ${join(s.runDir, 'checkpoints/best')}, last: ${join(s.runDir, 'checkpoints/last')})`,
      );
      this.log(lines.join('\n'));
    } finally {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
      parent?.close();
    }
  }
}
