// Display names for the results table, spelled as the seed notebook
// (Medical-SAM-Adapter's use-lora-for-adaption.ipynb) spells them: Baseline is
// the model family, Backbone the image encoder, mode the PEFT method. Unknown
// ids (external plugins) show as they are.

const FAMILIES: Record<string, string> = {
  sam: 'SAM',
  mobile_sam: 'MobileSAM',
  efficient_sam: 'EfficientSAM',
};

/** Encoder names per backbone, by preset; `*` is the name of any other preset. */
const ENCODERS: Record<string, Record<string, string>> = {
  mobile_sam: { tiny_vit: 'Tiny-ViT', '*': 'Tiny-ViT' },
  efficient_sam: { vit_t: 'ViT-Tiny', vit_s: 'ViT-Small', '*': 'ViT' },
  sam: { vit_b: 'ViT-B', vit_l: 'ViT-L', vit_h: 'ViT-H', '*': 'ViT' },
};

const METHODS: Record<string, { mode: string; mod: string }> = {
  adapter: { mode: 'Adapter', mod: 'sam_adpt' },
  lora: { mode: 'LoRA', mod: 'sam_lora' },
  adalora: { mode: 'AdaLoRA', mod: 'sam_adalora' },
};

const DATASETS: Record<string, string> = { refuge: 'REFUGE', isic: 'ISIC' };

/** The seed's "Baseline": the model family (MobileSAM for `mobile_sam`). */
export function baselineName(backboneId: string): string {
  return FAMILIES[backboneId] ?? backboneId;
}

/**
 * The seed's "Backbone" spelling of the encoder: `Tiny-ViT`, `ViT-Small`. A
 * preset without a name of its own (a CPU-sized `tiny`) is added in brackets.
 */
export function encoderName(backboneId: string, preset: string | undefined | null): string {
  const names = ENCODERS[backboneId];
  if (!names) return preset ? `${backboneId} ${preset}` : backboneId;
  if (preset && names[preset]) return names[preset]!;
  return preset ? `${names['*']} (${preset})` : names['*']!;
}

/** The seed's "mode": Adapter, LoRA, AdaLoRA. */
export function modeName(methodId: string): string {
  return METHODS[methodId]?.mode ?? methodId;
}

/** Medical-SAM-Adapter's `-mod` value for a method (`sam_lora`). */
export function modName(methodId: string): string {
  return METHODS[methodId]?.mod ?? `sam_${methodId}`;
}

/** The dataset's name; `path: null` in run.json is the embedded synthetic data of that layout. */
export function datasetName(kind: string | undefined, path?: string | null): string {
  if (!kind) return 'unknown dataset';
  const name = DATASETS[kind.toLowerCase()] ?? kind;
  return path === null ? `${name} (synthetic)` : name;
}
