import { Args, Flags } from '@oclif/core';
import { basename, join, resolve } from 'node:path';
import { DEFAULT_BACKBONE } from '../builtins.js';
import { FLAG_LIMITS, integerFlag, pathFlag } from '../cli/flag-values.js';
import { BaseCommand } from '../cli/base-command.js';
import { ProgressLine } from '../cli/progress.js';
import { PeftError } from '../core/errors.js';
import { expandInputs } from '../app/predict/inputs.js';
import { openPredictor, type PredictorSource } from '../app/predict/open-predictor.js';
import { predictImages, type PromptSource } from '../app/predict/predict-images.js';
import { promptsFromText } from '../app/predict/prompt-text.js';
import { promptModes, type PromptMode } from '../app/train/prompts.js';
import { parseWindow } from '../app/data/window.js';

export default class Predict extends BaseCommand {
  static override summary = 'Segment images with a trained model: masks, overlays and predictions.json.';
  static override description = `Loads a trained run (--run DIR: its best checkpoint, else its last) or an adapter folder on its base weights (--adapter DIR --checkpoint FILE; peftjs or Hugging Face PEFT), and segments image files, folders (their image files) or glob patterns, with --point/--box prompts or prompts drawn from ground-truth masks as peft eval draws them (--prompts-from). Images are prepared exactly as for evaluation (resized to the model's input, normalised), and the image encoder runs once per image whatever the number of prompts.

Writes into --out, per image: <name>.mask.png, the binary mask at the image's own size (a model of several classes: <name>.<class>.mask.png each; --multimask: <name>.mask-<k>.png per candidate), with --probabilities the probability map as a 16-bit grey PNG (<name>.prob.png, value/65535), and <name>.overlay.png, the image with the masks' fill and outline and the prompt; and predictions.json: per image its size, prompt, each mask's area in pixels and predicted IoU, encoder and decoder time. Several --box prompts give <name>.p<j>.… per prompt.

An image that cannot be read or prompted is one warning line; the others go on, and the exit code is 1. --out is created, or must be empty or a previous peft predict's output; --force adds to another folder without overwriting any file of yours.`;
  static override examples = [
    '<%= config.bin %> predict --run runs/mobile_sam-tiny-lora --point 64,60 photo.jpg',
    '<%= config.bin %> predict --run runs/x "data/REFUGE/Test-400/*/*.jpg" --prompts-from data/REFUGE/Test-400',
    '<%= config.bin %> predict --adapter exported/ --checkpoint mobile_sam.pt --box 30,30,200,180 --multimask scans/',
  ];
  static override strict = false;
  static override args = {
    images: Args.string({ description: 'image files, folders or glob patterns (quote patterns), any number', required: false }),
  };
  static override flags = {
    run: pathFlag({ description: 'a run directory (written by peft train)' }),
    adapter: pathFlag({ description: 'an adapter folder (peft export: peftjs or Hugging Face PEFT) instead of a run; needs --checkpoint' }),
    checkpoint: pathFlag({ description: "with --run: 'best' (default, else 'last'), 'last' or a checkpoint folder; with --adapter: the base weights it was trained on (.safetensors, .pt, .pth)", aliases: ['sam-ckpt', 'sam_ckpt'] }),
    backbone: Flags.string({ description: `with --adapter: the backbone (default: the one the adapter records, else ${DEFAULT_BACKBONE})`, aliases: ['net'] }),
    preset: Flags.string({ description: "with --adapter: the backbone preset (default: the adapter's, else the backbone's training preset)", aliases: ['encoder'] }),
    'image-size': integerFlag(FLAG_LIMITS.imageSize)({ description: 'with --adapter: the input image size the adapter was trained at', aliases: ['image_size'] }),
    classes: Flags.string({ description: "with --adapter: the classes its head was trained on, in order, comma-separated (a REFUGE run's: cup,disc); default one mask" }),
    point: Flags.string({ description: 'a point prompt x,y or x,y:label (label 1 foreground, 0 background), image pixels; repeatable: the points form one prompt', multiple: true, multipleNonGreedy: true }),
    box: Flags.string({ description: 'a box prompt x0,y0,x1,y1 (first and last pixel); repeatable: each box is a prompt of its own', multiple: true, multipleNonGreedy: true }),
    'prompts-from': pathFlag({ description: 'draw each image\'s prompt from its ground truth in this folder, as peft eval does (REFUGE raters <name>/<name>_seg_<class>_<k>.png, or <name>.png, <name>_mask.png…)', aliases: ['prompts_from'] }),
    prompt: Flags.string({ description: `with --prompts-from: ${promptModes.join(', ')} (default: the run's); alone, none runs without a prompt` }),
    seed: integerFlag(FLAG_LIMITS.integer)({ description: "with --prompts-from: the prompts' seed (default: the run's)" }),
    multimask: Flags.boolean({ description: "every candidate mask of the head (SAM: 3) instead of one mask per class", default: false }),
    probabilities: Flags.boolean({ description: 'also write the probability maps (16-bit grey PNG, value/65535)', default: false }),
    window: Flags.string({ description: "DICOM and TIFF: the grey-level window centre,width (e.g. 40,400); default: the file's, else the image's min..max" }),
    frame: integerFlag(FLAG_LIMITS.positive)({ description: 'DICOM and TIFF: the frame (page) of a multi-frame file, from 1' }),
    out: pathFlag({ description: 'output folder (default: predictions/<run or adapter name>)' }),
    force: Flags.boolean({ description: 'write into an existing folder that is not a previous peft predict output (no file of yours is overwritten)', default: false }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Predict);
    const inputs = argv as string[];
    if (!flags.run === !flags.adapter) throw new PeftError('give the model: --run DIR (a trained run), or --adapter DIR with --checkpoint FILE');
    if (flags.run) {
      const adapterOnly = (['backbone', 'preset', 'image-size', 'classes'] as const).filter((f) => flags[f] !== undefined);
      if (adapterOnly.length) throw new PeftError(`${adapterOnly.map((f) => `--${f}`).join(', ')}: for --adapter only (a run knows its model)`);
    }
    const given = promptsFromText(flags.point ?? [], flags.box ?? []);
    if (flags.prompt !== undefined && !promptModes.includes(flags.prompt as PromptMode)) throw new PeftError(`unknown --prompt '${flags.prompt}': choose ${promptModes.join(', ')}`);
    if (flags['prompts-from'] && given.length) throw new PeftError('--prompts-from draws the prompts: give it, or --point/--box, not both');
    if (!flags['prompts-from'] && (flags.seed !== undefined || (flags.prompt !== undefined && flags.prompt !== 'none'))) throw new PeftError('--prompt click|box and --seed go with --prompts-from');
    if (!flags['prompts-from'] && !given.length && flags.prompt !== 'none') throw new PeftError('give a prompt: --point x,y, --box x0,y0,x1,y1, or --prompts-from MASKDIR (or --prompt none for none)');
    if (flags.prompt === 'none' && given.length) throw new PeftError('--prompt none runs without a prompt: drop --point/--box');
    if (flags.frame !== undefined && flags.frame < 1) throw new PeftError(`--frame counts from 1, got ${flags.frame}`);
    const readOptions = { ...(flags.window !== undefined ? { window: parseWindow(flags.window) } : {}), ...(flags.frame !== undefined ? { frame: flags.frame } : {}) };

    await this.backend(flags.backend);
    const registry = await this.registry();
    const source: PredictorSource = flags.run
      ? { run: flags.run, checkpoint: flags.checkpoint }
      : {
          adapter: flags.adapter!,
          checkpoint: flags.checkpoint!,
          backbone: flags.backbone,
          preset: flags.preset,
          imageSize: flags['image-size'],
          classes: flags.classes?.split(',').map((c) => c.trim()).filter(Boolean),
        };
    const out = resolve(flags.out ?? join('predictions', basename(resolve(flags.run ?? flags.adapter!))));
    const files = await expandInputs(inputs, { exclude: out });
    const predictor = await openPredictor(registry, source, { defaultBackbone: DEFAULT_BACKBONE });
    try {
      const e = predictor.evalPrompts;
      const mode = (flags.prompt as PromptMode | undefined) ?? e.mode;
      const prompts: PromptSource = flags['prompts-from']
        ? { kind: 'masks', dir: flags['prompts-from'], mode, seed: flags.seed ?? e.seed, batch: e.batch, outSize: e.outSize }
        : given.length
          ? { kind: 'given', prompts: given }
          : { kind: 'none' };
      if (prompts.kind === 'masks' && mode === 'none') throw new PeftError('--prompts-from with --prompt none draws nothing: choose click or box');
      this.log(`${predictor.label}: ${predictor.classes.join(', ')} at ${predictor.imageSize} px; ${files.length} image${files.length === 1 ? '' : 's'} into ${out}`);
      const progress = files.length > 1 ? new ProgressLine(files.length, process.stderr, 'image') : undefined;
      let failures = 0;
      const r = await predictImages(predictor, files, {
        out,
        force: flags.force,
        multimask: flags.multimask,
        probabilities: flags.probabilities,
        prompts,
        readOptions,
        onProgress: (done) => progress?.update(done, failures ? { failed: String(failures) } : {}),
        warn: (line) => {
          failures++;
          if (progress) progress.note(`peft: warning: ${line}`);
          else this.warnLine(line);
        },
      });
      progress?.done();
      const masks = r.images.reduce((n, i) => n + i.predictions.reduce((m, p) => m + p.masks.length, 0), 0);
      const enc = r.images.length ? r.images.reduce((s, i) => s + i.encoderMs, 0) / r.images.length : 0;
      const decs = r.images.flatMap((i) => i.predictions.map((p) => p.decoderMs));
      const dec = decs.length ? decs.reduce((a, b) => a + b, 0) / decs.length : 0;
      this.log(`wrote ${masks} mask${masks === 1 ? '' : 's'} for ${r.images.length} image${r.images.length === 1 ? '' : 's'} to ${r.out} (predictions.json); encoder ${Math.round(enc)} ms/image, decoder ${Math.round(dec)} ms/prompt, ${r.seconds.toFixed(1)} s in all`);
      if (r.failed.length) {
        this.warnLine(`${r.failed.length} of ${files.length} image${files.length === 1 ? '' : 's'} failed (listed above and in predictions.json)`);
        this.exit(1);
      }
    } finally {
      predictor.dispose();
    }
  }
}
