// The size limits every image decoder applies, and the dimension check they
// share. Kept apart from the format sniffing so that the DICOM and TIFF
// readers, which the header reader calls, can use them without a cycle.
import { PeftError } from '../../core/errors.js';

/** Limits applied to every decoded image. */
export const imageLimits = {
  /** Largest side in pixels. */
  maxSide: 16384,
  /** Largest pixel count (a 16k x 16k image). */
  maxPixels: 16384 * 16384,
  /** Largest file read from disk. */
  maxFileBytes: 512 * 1024 * 1024,
  /** Pixels any JPEG may have whatever its size (a 256x256 image). */
  jpegFreePixels: 1 << 16,
  /**
   * Pixels a JPEG may declare per byte of file beyond that. Every 8x8 block
   * costs at least one bit of entropy-coded data (a DC code), so no JPEG holds
   * more than 512 pixels per byte; twice that is allowed.
   */
  jpegPixelsPerByte: 1024,
  /** Deflate cannot expand more than ~1032:1; PNG raw data beyond that ratio cannot be present. */
  deflateMaxRatio: 1032,
  /** Most frames (DICOM) or pages (TIFF) a file may declare. */
  maxFrames: 10000,
  /** Most TIFF directory entries read over all pages (each is 12 bytes of header). */
  maxTiffEntries: 1 << 20,
} as const;

/** Refuses absurd dimensions. */
export function checkDimensions(file: string, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new PeftError(`${file}: invalid image dimensions ${width}x${height}`);
  }
  if (width > imageLimits.maxSide || height > imageLimits.maxSide || width * height > imageLimits.maxPixels) {
    throw new PeftError(`${file}: image dimensions ${width}x${height} exceed the limit of ${imageLimits.maxSide}x${imageLimits.maxSide}`);
  }
}

