// Segmentation data: the Dataset contract, REFUGE and ISIC loaders, image
// decoding (PNG, JPEG, BMP, DICOM, TIFF) and resizing, augmentation, and the
// synthetic fundus generator.
export * from './random.js';
export * from './dataset.js';
export * from './image-header.js';
export * from './image-io.js';
export { parseWindow, type ImageWindow } from './window.js';
export { describeTransferSyntax } from './dicom.js';
export * from './resize.js';
export * from './mask-target.js';
export * from './augment.js';
export * from './csv.js';
export * from './refuge.js';
export * from './isic.js';
export * from './synthetic-fundus.js';
export * from './synth-output.js';
export { decodeBmp, encodeBmp } from './bmp.js';
