// Display names for the results table, spelled as the seed notebook
// (Medical-SAM-Adapter's use-lora-for-adaption.ipynb) spells them: Baseline is
// the model family, Backbone the image encoder, mode the PEFT method. Each
// plugin declares its own (`display` in its definition); an id no loaded
// plugin registers (an external plugin not loaded now) shows as it is.
import type { BackboneDefinition, MethodDefinition } from '../../core/registry/definitions.js';

/** Where the names come from: the registered plugins (a Registry is one). */
export interface DisplaySource {
  backbones(): readonly Pick<BackboneDefinition, 'id' | 'display'>[];
  methods(): readonly Pick<MethodDefinition, 'id' | 'display'>[];
}

const DATASETS: Record<string, string> = { refuge: 'REFUGE', isic: 'ISIC' };

export class DisplayNames {
  private readonly backbones = new Map<string, BackboneDefinition['display']>();
  private readonly methods = new Map<string, MethodDefinition['display']>();

  /** Without a source every backbone and method shows its id. */
  constructor(source?: DisplaySource) {
    for (const b of source?.backbones() ?? []) this.backbones.set(b.id, b.display);
    for (const m of source?.methods() ?? []) this.methods.set(m.id, m.display);
  }

  /** The seed's "Baseline": the model family (MobileSAM for `mobile_sam`). */
  baseline(backboneId: string): string {
    return this.backbones.get(backboneId)?.family ?? backboneId;
  }

  /**
   * The seed's "Backbone" spelling of the encoder: `Tiny-ViT`, `ViT-Small`. A
   * preset without a name of its own (a CPU-sized `tiny`) is added in brackets
   * to the backbone's `*` name; a backbone that names no encoders shows its id
   * and preset.
   */
  encoder(backboneId: string, preset: string | undefined | null): string {
    const names = this.backbones.get(backboneId)?.encoders;
    const own = preset ? names?.[preset] : undefined;
    if (own) return own;
    const other = names?.['*'];
    if (!other) return preset ? `${backboneId} ${preset}` : backboneId;
    return preset ? `${other} (${preset})` : other;
  }

  /** The seed's "mode": Adapter, LoRA, AdaLoRA. */
  mode(methodId: string): string {
    return this.methods.get(methodId)?.name ?? methodId;
  }

  /** Medical-SAM-Adapter's `-mod` value for a method (`sam_lora`), or its id when it has none. */
  mod(methodId: string): string {
    return this.methods.get(methodId)?.mod ?? methodId;
  }
}

/** The dataset's name; `path: null` in run.json is the embedded synthetic data of that layout. */
export function datasetName(kind: string | undefined, path?: string | null): string {
  if (!kind) return 'unknown dataset';
  const name = DATASETS[kind.toLowerCase()] ?? kind;
  return path === null ? `${name} (synthetic)` : name;
}
