// The benchmark's workloads (an image encoder at a size and batch) and methods
// (a PEFT method and its config). Every case trains the method's parameters
// only, on random weights and random images, with loss = mean(encoder(x)^2).

export interface Workload {
  id: string;
  description: string;
  backbone: string;
  preset: string;
  /** Config overrides over the preset (the backbone's own config keys). */
  overrides: Record<string, unknown>;
  batch: number;
  imageSize: number;
}

export interface MethodCase {
  id: string;
  description: string;
  config: Record<string, unknown>;
}

export const WORKLOADS: Workload[] = [
  {
    id: 'w1',
    description: 'SAM ViT encoder, 256 px, patch 16, width 192, depth 4, 3 heads, window 8, global block 3, rel-pos, neck 64; batch 2',
    backbone: 'sam',
    preset: 'vit_b',
    overrides: {
      img_size: 256,
      patch_size: 16,
      embed_dim: 192,
      depth: 4,
      num_heads: 3,
      window_size: 8,
      global_attn_indexes: [3],
      use_rel_pos: true,
      out_chans: 64,
      // random weights: position tables sized for the 16x16 grid itself (no resize)
      pos_embed_grid: null,
      rel_pos_grid: null,
    },
    batch: 2,
    imageSize: 256,
  },
  {
    id: 'w2',
    description: 'MobileSAM TinyViT encoder, 256 px (dims 64,128,160,320; depths 2,2,6,2; heads 2,4,5,10; windows 7,7,14,7); batch 2',
    backbone: 'mobile_sam',
    preset: 'tiny_vit',
    overrides: {
      img_size: 256,
      embed_dims: [64, 128, 160, 320],
      depths: [2, 2, 6, 2],
      num_heads: [2, 4, 5, 10],
      window_sizes: [7, 7, 14, 7],
      num_classes: 0,
    },
    batch: 2,
    imageSize: 256,
  },
  {
    id: 'w0',
    description: 'EfficientSAM encoder, preset tiny (128 px, width 96, depth 4); batch 2 (a smoke workload)',
    backbone: 'efficient_sam',
    preset: 'tiny',
    overrides: {},
    batch: 2,
    imageSize: 128,
  },
];

export const METHODS: MethodCase[] = [
  { id: 'lora', description: 'LoRA r 4 on q and v of qkv and the MLP linears', config: { r: 4 } },
  { id: 'adapter', description: "Medical-SAM-Adapter's Adapter (space + MLP adapters, reference defaults)", config: {} },
  { id: 'adalora', description: 'AdaLoRA r 4 (init_r 4, target_r 4) on its default sites', config: { init_r: 4, target_r: 4 } },
];

export function findWorkload(id: string): Workload {
  const w = WORKLOADS.find((x) => x.id === id);
  if (!w) throw new Error(`unknown workload '${id}' (known: ${WORKLOADS.map((x) => x.id).join(', ')})`);
  return w;
}

export function findMethod(id: string): MethodCase {
  const m = METHODS.find((x) => x.id === id);
  if (!m) throw new Error(`unknown method '${id}' (known: ${METHODS.map((x) => x.id).join(', ')})`);
  return m;
}
