// Inference with a trained model: the contract (types.ts), opening a run or
// an adapter as a Predictor, and `peft predict`'s job over image files.
export * from './types.js';
export { ModelPredictor, scaleCoord, scaleSpan, type EvalPromptSettings, type ModelPredictorOptions } from './model-predictor.js';
export { openPredictor, runClasses, SINGLE_CLASS, type AdapterFolderSource, type OpenPredictorOptions, type PredictorSource, type RunSource } from './open-predictor.js';
export { EvalPromptStream, findGroundTruth, groundTruthTarget, toImagePrompt } from './prompts-from.js';
export { expandInputs, IMAGE_EXTENSIONS, type ExpandOptions } from './inputs.js';
export {
  checkPromptInside,
  MASK_THRESHOLD,
  outputStems,
  predictImages,
  prepareOutput,
  PREDICTIONS_FILE,
  type ImageRecord,
  type MaskRecord,
  type PredictImagesOptions,
  type PredictImagesResult,
  type PredictorLike,
  type PromptRecord,
  type PromptSource,
} from './predict-images.js';
