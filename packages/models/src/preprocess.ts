import { getErrorMessage } from '@yoco/common';
import type { Metadata, Sharp, SharpOptions } from 'sharp';

// Loaded on first use: shards import this package for the profile table and never decode images.
let sharpModule: Promise<(input: Buffer, options?: SharpOptions) => Sharp> | undefined;
const loadSharp = () => (sharpModule ??= import('sharp').then((m) => m.default));
import type { ModelProfile } from './profiles.js';
import { rgb, type Rgb } from './raster.js';
import { ImageError } from './errors/index.js';

export interface ImageLimits {
  /** Largest encoded image accepted (bytes). */
  maxBytes: number;
  /** Largest decoded image accepted (width x height). */
  maxPixels: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxBytes: 10 * 1024 * 1024, maxPixels: 40_000_000 };

const FORMATS = new Set(['jpeg', 'png', 'webp']);

/**
 * Decodes a JPEG, PNG or WebP and lays it out as the profile's input: EXIF
 * orientation applied, alpha flattened onto black, grayscale expanded to RGB,
 * resized (squashed, or padded to a square first), then (pixel - mean) / std
 * per channel, channels first. Returns [3 x H x W] float32.
 */
export async function preprocess(bytes: Uint8Array, profile: ModelProfile, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<Float32Array> {
  const [h, w] = profile.size;
  const raw = await decode(bytes, limits, (s) => s.resize(w, h, { fit: profile.fit === 'pad' ? 'contain' : 'fill', background: { r: 0, g: 0, b: 0 } }));
  if (raw.data.length !== w * h * 3) throw new ImageError(`decoded image has ${raw.data.length} bytes, expected ${w * h * 3}`);
  return layOut(raw.data, h, w, profile);
}

/**
 * Decodes an image at its own size (EXIF orientation applied, alpha on black,
 * RGB): what the face pipeline looks for faces in.
 */
export async function decodeRgb(bytes: Uint8Array, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<Rgb> {
  const raw = await decode(bytes, limits, (s) => s);
  return rgb(raw.width, raw.height, new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength));
}

async function decode(bytes: Uint8Array, limits: ImageLimits, shape: (s: Sharp) => Sharp): Promise<{ data: Buffer; width: number; height: number }> {
  if (bytes.length === 0) throw new ImageError('image is empty (0 bytes)');
  if (bytes.length > limits.maxBytes) throw new ImageError(`image is ${bytes.length} bytes, over the ${limits.maxBytes}-byte limit`);
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sharp = await loadSharp();
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ImageError(`not a decodable image (JPEG, PNG or WebP): ${getErrorMessage(err)}`);
  }
  if (!meta.format || !FORMATS.has(meta.format)) throw new ImageError(`image format '${meta.format ?? 'unknown'}' is not accepted; send JPEG, PNG or WebP`);
  const { width = 0, height = 0 } = meta;
  if (width === 0 || height === 0) throw new ImageError(`image has no area (${width} x ${height})`);
  if (width * height > limits.maxPixels) throw new ImageError(`image is ${width} x ${height} = ${width * height} pixels, over the ${limits.maxPixels}-pixel limit`);
  try {
    const { data, info } = await shape(
      sharp(input, { limitInputPixels: limits.maxPixels, failOn: 'error' })
        .rotate()
        .flatten({ background: { r: 0, g: 0, b: 0 } })
        .toColourspace('srgb'),
    )
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion to RGB`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw new ImageError(`image could not be decoded: ${getErrorMessage(err)}`);
  }
}

/** HWC bytes to the profile's CHW floats: (pixel - mean) / std, channels in the profile's order. */
function layOut(raw: Uint8Array, h: number, w: number, profile: ModelProfile): Float32Array {
  const out = new Float32Array(3 * h * w);
  const plane = h * w;
  const order = profile.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) {
    const src = order[c];
    const mean = profile.mean[c];
    const inv = 1 / profile.std[c];
    const base = c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = (raw[i * 3 + src] - mean) * inv;
  }
  return out;
}


