// The efficient_sam backbone config: one zod schema (defaults = the official
// EfficientSAM-Ti build), presets, and the option records the encoder and the
// head are built from.
import { PeftError, z } from '../../src/index.js';

const int = (min: number) => z.number().int().min(min);

/** The image encoder's keys (also the `efficientsam.ImageEncoderViT` fixture config). */
export const encoderFields = {
  img_size: int(1).default(1024).describe('Input side length in pixels (the official models use 1024)'),
  patch_size: int(1).default(16).describe('Patch embedding kernel = stride'),
  embed_dim: int(1).default(192).describe('ViT width (vit_t 192, vit_s 384)'),
  depth: int(1).default(12).describe('Number of ViT blocks'),
  num_heads: int(1).default(3).describe('Attention heads per ViT block'),
  mlp_ratio: z.number().positive().default(4).describe('ViT MLP hidden width / embed_dim'),
  pretrain_img_size: int(1).default(224).describe('Image size the pos_embed grid was trained at (grid = pretrain_img_size / patch_size)'),
  neck_dims: z.array(int(1)).min(1).default([256, 256]).describe('Neck channels (all equal); the embedding width the decoder uses'),
  layer_norm_eps: z.number().positive().default(1e-6).describe('LayerNorm eps in the ViT blocks'),
  neck_layer_norm_eps: z.number().positive().default(1e-6).describe('LayerNorm2d eps in the neck'),
};

const decoderFields = {
  decoder_max_num_input_points: int(1).default(6).describe('Prompt points per query (padded with -1 / truncated to this)'),
  decoder_transformer_depth: int(1).default(2).describe('Two-way transformer layers in the mask decoder'),
  decoder_transformer_mlp_dim: int(1).default(2048).describe('Hidden width of the two-way transformer MLPs'),
  decoder_num_heads: int(1).default(8).describe('Attention heads in the two-way transformer'),
  decoder_upscaling_layer_dims: z.array(int(1)).min(1).default([64, 32]).describe('Channels of the transposed-conv upscaling stages (each doubles the resolution)'),
  num_multimask_outputs: int(1).default(3).describe('Masks returned when multimask output is asked for'),
  iou_head_depth: int(2).default(3).describe('Linear layers of the IoU head (as the official build: depth - 1 hidden layers + the output layer)'),
  iou_head_hidden_dim: int(1).default(256).describe('Hidden width of the IoU head'),
};

type Issue = (key: string, message: string) => void;

function checkEncoder(c: z.infer<z.ZodObject<typeof encoderFields>>, bad: Issue): void {
  if (c.embed_dim % c.num_heads !== 0) bad('num_heads', `must divide embed_dim ${c.embed_dim}, got ${c.num_heads}`);
  if (c.img_size < c.patch_size) bad('img_size', `must be at least patch_size ${c.patch_size}, got ${c.img_size}`);
  if (c.pretrain_img_size < c.patch_size) bad('pretrain_img_size', `must be at least patch_size ${c.patch_size}, got ${c.pretrain_img_size}`);
  if (Math.floor(c.embed_dim * c.mlp_ratio) < 1) bad('mlp_ratio', `gives an empty MLP for embed_dim ${c.embed_dim}`);
}

/** The encoder fixture's config: encoder keys only, unknown keys ignored. */
export const encoderSchema = z.object(encoderFields).superRefine((c, ctx) => {
  checkEncoder(c, (key, message) => ctx.addIssue({ code: 'custom', path: [key], message }));
});

export const efficientSamSchema = z.strictObject({ ...encoderFields, ...decoderFields }).superRefine((c, ctx) => {
  const bad: Issue = (key, message) => ctx.addIssue({ code: 'custom', path: [key], message });
  checkEncoder(c, bad);
  if (c.img_size % c.patch_size !== 0) bad('img_size', `must be a multiple of patch_size ${c.patch_size}, got ${c.img_size}`);
  const neck = c.neck_dims[0]!;
  if (c.neck_dims.some((d) => d !== neck)) bad('neck_dims', `the neck keeps one width: all entries must be equal, got [${c.neck_dims}]`);
  if (neck % 2 !== 0) bad('neck_dims', `the embedding width must be even (random-Fourier positional encoding), got ${neck}`);
  if (neck % c.decoder_num_heads !== 0 || (neck / 2) % c.decoder_num_heads !== 0) {
    bad('decoder_num_heads', `must divide the embedding width ${neck} and its half ${neck / 2}, got ${c.decoder_num_heads}`);
  }
});

export type EfficientSamConfig = z.infer<typeof efficientSamSchema>;

export const efficientSamPresets: Record<string, Partial<EfficientSamConfig>> = {
  vit_t: {},
  vit_s: { embed_dim: 384, num_heads: 6 },
  tiny: {
    img_size: 128,
    embed_dim: 96,
    depth: 4,
    num_heads: 3,
    neck_dims: [64, 64],
    decoder_transformer_mlp_dim: 256,
    decoder_num_heads: 4,
    decoder_upscaling_layer_dims: [32, 16],
    iou_head_hidden_dim: 64,
  },
};

/** What the image encoder is built from. */
export interface EncoderOptions {
  imgSize: number;
  patchSize: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  neckDims: number[];
  pretrainImgSize: number;
  layerNormEps: number;
  neckLayerNormEps: number;
}

/** What the prompt encoder and mask decoder are built from (`MaskDecoder`'s own arguments). */
export interface HeadOptions {
  embedDim: number;
  /** Token grid of the image embedding `[h, w]`. */
  imageEmbeddingSize: [number, number];
  /** Input image size `[H, W]` the point coordinates refer to. */
  inputImageSize: [number, number];
  maxNumInputPoints: number;
  numMultimaskOutputs: number;
  transformerDepth: number;
  transformerMlpDim: number;
  transformerHeads: number;
  attentionDownsampleRate: number;
  /** Hidden layers of the IoU MLP (`MLPBlock.num_layers`; the official build passes iou_head_depth - 1). */
  iouHeadLayers: number;
  iouHeadHiddenDim: number;
  upscalingLayerDims: number[];
}

export function encoderOptions(c: z.infer<typeof encoderSchema>): EncoderOptions {
  return {
    imgSize: c.img_size,
    patchSize: c.patch_size,
    embedDim: c.embed_dim,
    depth: c.depth,
    numHeads: c.num_heads,
    mlpRatio: c.mlp_ratio,
    neckDims: c.neck_dims,
    pretrainImgSize: c.pretrain_img_size,
    layerNormEps: c.layer_norm_eps,
    neckLayerNormEps: c.neck_layer_norm_eps,
  };
}

/** The head sized from the neck, as `build_efficient_sam` does. */
export function headOptions(c: EfficientSamConfig): HeadOptions {
  const grid = Math.floor(c.img_size / c.patch_size);
  return {
    embedDim: c.neck_dims[c.neck_dims.length - 1]!,
    imageEmbeddingSize: [grid, grid],
    inputImageSize: [c.img_size, c.img_size],
    maxNumInputPoints: c.decoder_max_num_input_points,
    numMultimaskOutputs: c.num_multimask_outputs,
    transformerDepth: c.decoder_transformer_depth,
    transformerMlpDim: c.decoder_transformer_mlp_dim,
    transformerHeads: c.decoder_num_heads,
    attentionDownsampleRate: 2,
    iouHeadLayers: c.iou_head_depth - 1,
    iouHeadHiddenDim: c.iou_head_hidden_dim,
    upscalingLayerDims: c.decoder_upscaling_layer_dims,
  };
}

/** Checks the head options a parity fixture (or a caller) gives; PeftError naming the key. */
export function checkHeadOptions(o: HeadOptions, owner: string): void {
  const fail = (key: string, msg: string) => {
    throw new PeftError(`${owner}: invalid config '${key}': ${msg}`);
  };
  const posInt = (key: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) fail(key, `expected a positive integer, got ${v}`);
  };
  posInt('embed_dim', o.embedDim);
  posInt('max_num_input_points', o.maxNumInputPoints);
  posInt('num_multimask_outputs', o.numMultimaskOutputs);
  posInt('transformer_depth', o.transformerDepth);
  posInt('transformer_mlp_dim', o.transformerMlpDim);
  posInt('transformer_heads', o.transformerHeads);
  posInt('attention_downsample_rate', o.attentionDownsampleRate);
  posInt('iou_head_depth', o.iouHeadLayers);
  posInt('iou_head_hidden_dim', o.iouHeadHiddenDim);
  if (o.upscalingLayerDims.length === 0) fail('upscaling_layer_dims', 'needs at least one stage');
  o.upscalingLayerDims.forEach((d) => posInt('upscaling_layer_dims', d));
  if (o.embedDim % 2 !== 0) fail('embed_dim', `must be even, got ${o.embedDim}`);
  const inner = o.embedDim / o.attentionDownsampleRate;
  if (o.embedDim % o.transformerHeads !== 0 || !Number.isInteger(inner) || inner % o.transformerHeads !== 0) {
    fail('transformer_heads', `must divide ${o.embedDim} and ${inner}, got ${o.transformerHeads}`);
  }
}
