// The size limits every image decoder applies, in one place, and the checks
// they share: the dimensions, the bytes an image declares it decodes to, and
// the budget of a whole sample (an image and its masks). Kept apart from the
// format sniffing so that the DICOM and TIFF readers, which the header reader
// calls, can use them without a cycle. docs/reliability.md lists the numbers.
import { PeftError } from '../../core/errors.js';
import { quoteName } from '../../core/text.js';

const MiB = 1024 * 1024;

/** Limits applied to every decoded image. */
export const imageLimits = {
  /** Largest side in pixels. */
  maxSide: 16384,
  /** Largest pixel count (a 16k x 16k image). */
  maxPixels: 16384 * 16384,
  /**
   * Largest image a header may declare, in decoded bytes: width x height x
   * channels x bytes per sample (16-bit samples count 2, a 1-bit mask 1).
   * 128 MiB holds an 8-bit RGB image of 6,500 x 6,500 or a grey one of
   * 11,585 x 11,585 (dermoscopy and fundus images are 10 to 90 MiB).
   */
  maxImageBytes: 128 * MiB,
  /** Largest sum of the declared decoded bytes of one sample's files (an image and all its masks: 15 files in REFUGE, 2 in ISIC). */
  maxSampleBytes: 256 * MiB,
  /** Largest file read from disk. */
  maxFileBytes: 512 * MiB,
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

const mib = (bytes: number) => `${(bytes / MiB).toFixed(bytes % MiB ? 1 : 0)} MiB`;

/**
 * Checks the bytes an image's header says it decodes to (width x height x
 * channels x bytes per sample) against `imageLimits.maxImageBytes`, before
 * any decoder allocates them; returns that size. Every header reader calls it.
 */
export function checkDecodedSize(file: string, width: number, height: number, channels: number, bytesPerSample: number): number {
  checkDimensions(file, width, height);
  const bytes = width * height * channels * bytesPerSample;
  if (bytes > imageLimits.maxImageBytes) {
    const depth = bytesPerSample > 1 ? ` at ${8 * bytesPerSample} bits` : '';
    throw new PeftError(`${file}: ${width}x${height}x${channels}${depth} decodes to ${mib(bytes)}, more than the limit of ${mib(imageLimits.maxImageBytes)} per image`);
  }
  return bytes;
}

/**
 * The decoded bytes one sample's files may take together (`imageLimits.maxSampleBytes`):
 * each file's declared size is taken before it is decoded, and the file that
 * would go over is refused by name.
 */
export class SampleBudget {
  private used = 0;
  constructor(
    /** The sample, for the message. */
    readonly sample: string,
    readonly limit: number = imageLimits.maxSampleBytes,
  ) {}

  take(file: string, bytes: number): void {
    this.used += bytes;
    if (this.used > this.limit) {
      throw new PeftError(`${file}: sample ${quoteName(this.sample)}'s files decode to ${mib(this.used)} with this one, more than the limit of ${mib(this.limit)} per sample`);
    }
  }
}
