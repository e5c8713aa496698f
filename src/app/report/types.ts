// The files a training run directory holds (written by the trainer), as the
// report reads them, and one row of the results table.

/** `run.json`: what was trained, with what, how. */
export interface RunInfo {
  version?: number;
  createdAt?: string;
  backbone: { id: string; preset?: string };
  method: { id: string; config?: Record<string, unknown> };
  imageSize?: number;
  outSize?: number;
  dataset?: { kind?: string; path?: string | null; channels?: string[] };
  options?: { batch?: number; lr?: number; epochs?: number | null; steps?: number | null; valEvery?: number; seed?: number; loss?: string; prompt?: string };
  trainDecoder?: boolean;
  command?: string;
}

/** A `{"type":"step"}` line of `log.jsonl`. */
export interface StepPoint {
  step: number;
  epoch: number;
  loss: number;
  ms?: number;
  time?: string;
}

/** A `{"type":"val"}` line of `log.jsonl`: per-class metrics after an epoch. */
export interface ValPoint {
  step: number;
  epoch: number;
  dice: Record<string, number>;
  iou: Record<string, number>;
  loss?: number;
  time?: string;
}

/** Per-class metrics of the final evaluation. */
export interface FinalMetrics {
  dice: Record<string, number>;
  iou: Record<string, number>;
  dice05?: Record<string, number>;
  iou05?: Record<string, number>;
}

/** `summary.json`, written when a run ends. */
export interface RunSummary {
  steps?: number;
  epochs?: number;
  seconds?: number;
  bestDice?: number | null;
  bestStep?: number | null;
  final?: FinalMetrics | null;
  peakRss?: number;
  peakTensorBytes?: number;
  methodParameters?: number;
  trainableParameters?: number;
  totalParameters?: number;
  backend?: string;
  stoppedEarly?: boolean;
}

/** Everything the report knows about one run directory. */
export interface RunRecord {
  /** The directory as given. */
  dir: string;
  info: RunInfo;
  /** The step records, all of them up to 100,000, else evenly downsampled (first and last kept): see `logTotals`. */
  steps: StepPoint[];
  vals: ValPoint[];
  /** Absent while the run is in progress, or when it crashed. */
  summary?: RunSummary;
  /** Sums over every record of the log, downsampled or not. */
  logTotals?: LogTotals;
}

/** What the whole log adds up to (the curves may hold only a sample of it). */
export interface LogTotals {
  /** Step records in the log. */
  steps: number;
  /** Their `ms` summed. */
  stepMs: number;
  /** The latest `time` of any step or validation record (ms since 1970), null if none. */
  latestTime: number | null;
}

/** One row of the results table: the seed notebook's columns plus parameters and time. */
export interface ResultRow {
  /** Run directory, as given. */
  dir: string;
  /** Short unique name of the run in legends and headings. */
  label: string;
  /** `complete` when summary.json exists; `incomplete` = in progress or crashed (numbers from the log). */
  status: 'complete' | 'incomplete';
  /** The model family, as the seed's "Baseline" column (MobileSAM, EfficientSAM, SAM). */
  baseline: string;
  /** Backbone id and preset (`mobile_sam/tiny`). */
  backbone: string;
  backboneId: string;
  preset: string | null;
  /** The encoder's name, as the seed's "Backbone" column spells it (Tiny-ViT, ViT-Small). */
  encoder: string;
  /** The PEFT method's display name (Adapter, LoRA, AdaLoRA), the seed's "mode". */
  mode: string;
  methodId: string;
  /** Medical-SAM-Adapter's `-mod` name for the method (sam_adpt, sam_lora, sam_adalora). */
  mod: string;
  dataset: string;
  classes: string[];
  /** Mean over classes of the final Dice (null when the run has no validation yet). */
  dice: number | null;
  diceByClass: Record<string, number>;
  /** Mean over classes of the final IoU. */
  miou: number | null;
  iouByClass: Record<string, number>;
  /** Where the final numbers come from: summary.json's `final`, or the log's last validation. */
  metricsFrom: 'summary' | 'log' | 'none';
  bestDice: number | null;
  bestStep: number | null;
  /** Peak resident memory in MiB (null when unknown). */
  memoryMB: number | null;
  peakRss: number | null;
  peakTensorBytes: number | null;
  trainableParameters: number | null;
  totalParameters: number | null;
  methodParameters: number | null;
  /** Wall time in seconds (from summary.json, else the log's time span). */
  seconds: number | null;
  steps: number;
  epochs: number;
  backend: string | null;
  imageSize: number | null;
}
