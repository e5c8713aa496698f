// A small DICOM Part 10 writer for the tests: the 128-byte preamble, "DICM",
// the file meta group (explicit VR little endian, as the standard requires),
// then a handful of image elements and the native pixel data in the chosen
// transfer syntax (implicit or explicit VR little endian, deflated explicit VR
// little endian, explicit VR big endian). Values are written as given, so a
// test can also write a lying header (`extra` replaces or adds elements).
import { deflateRawSync } from 'node:zlib';

export const transferSyntaxes = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpeg2000: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
} as const;

/** An element: `tag` as 0xGGGGEEEE; `value` a string (padded to even length), numbers (for US/UL/SS) or raw bytes. */
export interface DicomElement {
  tag: number;
  vr: string;
  value: string | number[] | Uint8Array;
}

export interface DicomSpec {
  rows: number;
  columns: number;
  /** Stored values, channels-last per frame (or planar when `planarConfiguration` is 1), frames one after another. */
  pixels: ArrayLike<number>;
  samplesPerPixel?: 1 | 3;
  photometric?: string;
  planarConfiguration?: 0 | 1;
  frames?: number;
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  highBit?: number;
  /** 1 for signed (two's complement) values. */
  pixelRepresentation?: 0 | 1;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  windowCenter?: number;
  windowWidth?: number;
  transferSyntax?: string;
  /** Elements replacing (same tag) or added to the ones above. */
  extra?: DicomElement[];
}

const longVrs = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'SQ', 'UT', 'UN', 'UC', 'UR']);

function valueBytes(el: DicomElement, little: boolean): Uint8Array {
  if (el.value instanceof Uint8Array) return el.value;
  if (typeof el.value === 'string') {
    const pad = el.vr === 'UI' || el.vr === 'OB' ? '\0' : ' ';
    const s = el.value.length % 2 ? el.value + pad : el.value;
    return new TextEncoder().encode(s);
  }
  const size = el.vr === 'UL' || el.vr === 'SL' ? 4 : 2;
  const out = new Uint8Array(el.value.length * size);
  const dv = new DataView(out.buffer);
  el.value.forEach((v, i) => {
    if (size === 4) dv.setUint32(i * 4, v >>> 0, little);
    else dv.setUint16(i * 2, v & 0xffff, little);
  });
  return out;
}

function encode(elements: DicomElement[], explicit: boolean, little: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const el of [...elements].sort((a, b) => a.tag - b.tag)) {
    const v = valueBytes(el, little);
    const long = longVrs.has(el.vr);
    const head = new Uint8Array(explicit ? (long ? 12 : 8) : 8);
    const dv = new DataView(head.buffer);
    dv.setUint16(0, el.tag >>> 16, little);
    dv.setUint16(2, el.tag & 0xffff, little);
    if (!explicit) dv.setUint32(4, v.length, little);
    else {
      head[4] = el.vr.charCodeAt(0);
      head[5] = el.vr.charCodeAt(1);
      if (long) dv.setUint32(8, v.length, little);
      else dv.setUint16(6, v.length, little);
    }
    parts.push(head, v);
  }
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Writes a DICOM file holding `spec`'s image. */
export function writeDicom(spec: DicomSpec): Uint8Array {
  const ts = spec.transferSyntax ?? transferSyntaxes.explicitLE;
  const little = ts !== transferSyntaxes.explicitBE;
  const explicit = ts !== transferSyntaxes.implicitLE;
  const spp = spec.samplesPerPixel ?? 1;
  const bits = spec.bitsAllocated ?? 16;
  const sopClass = '1.2.840.10008.5.1.4.1.1.7'; // Secondary Capture
  const sopInstance = '1.2.826.0.1.3680043.9.7.1';
  const meta = encode([
    { tag: 0x00020001, vr: 'OB', value: Uint8Array.of(0, 1) },
    { tag: 0x00020002, vr: 'UI', value: sopClass },
    { tag: 0x00020003, vr: 'UI', value: sopInstance },
    { tag: 0x00020010, vr: 'UI', value: ts },
    { tag: 0x00020012, vr: 'UI', value: '1.2.826.0.1.3680043.9.7.2' },
  ], true, true);
  const groupLength = encode([{ tag: 0x00020000, vr: 'UL', value: [meta.length] }], true, true);

  const n = spec.pixels.length;
  const pixelBytes = new Uint8Array(bits === 8 ? n + (n % 2) : n * 2);
  const pdv = new DataView(pixelBytes.buffer);
  for (let i = 0; i < n; i++) {
    const v = spec.pixels[i]!;
    if (bits === 8) pixelBytes[i] = v & 0xff;
    else pdv.setUint16(i * 2, v & 0xffff, little);
  }
  const stored = spec.bitsStored ?? bits;
  const els: DicomElement[] = [
    { tag: 0x00080016, vr: 'UI', value: sopClass },
    { tag: 0x00080018, vr: 'UI', value: sopInstance },
    { tag: 0x00280002, vr: 'US', value: [spp] },
    { tag: 0x00280004, vr: 'CS', value: spec.photometric ?? (spp === 3 ? 'RGB' : 'MONOCHROME2') },
    { tag: 0x00280010, vr: 'US', value: [spec.rows] },
    { tag: 0x00280011, vr: 'US', value: [spec.columns] },
    { tag: 0x00280100, vr: 'US', value: [bits] },
    { tag: 0x00280101, vr: 'US', value: [stored] },
    { tag: 0x00280102, vr: 'US', value: [spec.highBit ?? stored - 1] },
    { tag: 0x00280103, vr: 'US', value: [spec.pixelRepresentation ?? 0] },
    { tag: 0x7fe00010, vr: bits === 8 ? 'OB' : 'OW', value: pixelBytes },
  ];
  if (spp === 3) els.push({ tag: 0x00280006, vr: 'US', value: [spec.planarConfiguration ?? 0] });
  if (spec.frames !== undefined) els.push({ tag: 0x00280008, vr: 'IS', value: String(spec.frames) });
  if (spec.windowCenter !== undefined) els.push({ tag: 0x00281050, vr: 'DS', value: String(spec.windowCenter) });
  if (spec.windowWidth !== undefined) els.push({ tag: 0x00281051, vr: 'DS', value: String(spec.windowWidth) });
  if (spec.rescaleIntercept !== undefined) els.push({ tag: 0x00281052, vr: 'DS', value: String(spec.rescaleIntercept) });
  if (spec.rescaleSlope !== undefined) els.push({ tag: 0x00281053, vr: 'DS', value: String(spec.rescaleSlope) });
  for (const e of spec.extra ?? []) {
    const at = els.findIndex((x) => x.tag === e.tag);
    if (at >= 0) els[at] = e;
    else els.push(e);
  }
  let body = encode(els, explicit, little);
  if (ts === transferSyntaxes.deflatedLE) body = new Uint8Array(deflateRawSync(body));
  const preamble = new Uint8Array(132);
  preamble.set([0x44, 0x49, 0x43, 0x4d], 128);
  return concat([preamble, groupLength, meta, body]);
}
