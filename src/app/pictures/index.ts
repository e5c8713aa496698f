// Pictures of images and masks, shared by `peft predict`'s overlays, the
// training run's `--vis` panels, the report's pictures and `peft serve`:
// masks drawn over images (fill + outline), prompts marked, tiles with
// captions in rows, PNG encoding.
export { markBox, markPoint, overlayMasks, PROMPT_COLOURS, type MaskLayer, type OverlayOptions, type Rgb } from './mask-image.js';
export { binaryMask, CLASS_COLOURS, classColour, markSizes, maskArea, maskPng, overlayMask, overlayNested, probabilityPng16, type OverlayMaskOptions } from './overlay.js';
export { blit, defaultPanelLayout, panelRow, panelRowSize, stackRows, type PanelLayout, type Tile } from './panel.js';
export { captionFont, drawText, findFontFile, fitText, type TextItem } from './text.js';
export { promptValues, VIS_ROWS, visBatchWriter, visFile, visPanel, visTileSide, type VisPrompt, type VisSample, type VisWriterOptions } from './vis.js';
export { encodePng } from '../data/image-io.js';
