import { stopChild } from '@yoco/devkit';
import { rawUnary } from '../support/raw-unary.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort, vectorFromWire } from '@yoco/common';

import { isServiceError, loadProtos, makeClient, statusName, unary } from '@yoco/rpc';
import type * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let child: ChildProcess;
let client: grpc.Client;
let metricsPort: number;

/** A test picture: smooth colour fields and edges, so resizing and rotation matter. */
function picture(width: number, height: number, channels: 3 | 4 = 3): Buffer {
  const px = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      px[i] = (x * 255) / width;
      px[i + 1] = (y * 255) / height;
      px[i + 2] = (x - width / 3) ** 2 + (y - height / 2) ** 2 < (height / 4) ** 2 ? 230 : 40;
      if (channels === 4) px[i + 3] = x < width / 2 ? 255 : 128;
    }
  }
  return px;
}

beforeAll(async () => {
  const port = await freePort();
  metricsPort = await freePort();
  child = spawn(process.execPath, [`${ROOT}/services/embedder/dist/main.js`], {
    env: {
      ...process.env,
      EMBEDDER_PROFILE: 'face-resnet128',
      // These pictures are colour fields, not faces: the descriptor sees each whole (face detection is tested in faces.test.ts).
      FACE_CROP: 'none',
      GRPC_ADDRESS: `127.0.0.1:${port}`,
      METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      EMBED_MAX_BATCH: '16',
      EMBED_MAX_QUEUE_DELAY_MS: '20',
      MAX_IMAGE_BYTES: String(300 * 1024),
      MAX_IMAGE_PIXELS: String(2000 * 2000),
    },
    stdio: 'ignore',
  });
  client = makeClient(loadProtos().Embedder, `127.0.0.1:${port}`);
  for (let i = 0; i < 300; i++) {
    if (await rawUnary(client, 'Info', {}, { deadline: Date.now() + 1000 }).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('embedder did not start');
});

afterAll(async () => {
  client?.close();
  if (child) await stopChild(child, 'SIGTERM');
});

interface Embedded { embeddings: number[][]; modelId: string }
// What the embedder sends is f32le bytes; the tests compare plain numbers.
const embed = (images: Buffer[]): Promise<Embedded> =>
  rawUnary(client, 'Embed', { images }, { deadline: Date.now() + 60_000 }).then((r) => ({
    modelId: r.modelId,
    embeddings: r.embeddings.map((e: { f32le: Buffer; values: number[] }) => {
      // The one encoding: bytes, never the per-float field.
      expect(e.values).toHaveLength(0);
      return Array.from(vectorFromWire(e.f32le, e.values));
    }),
  }));
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

async function status(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (!isServiceError(err)) throw err;
    return `${statusName(err.code)}: ${err.details}`;
  }
}

describe('the embedder', () => {
  it('decodes JPEG, PNG and WebP, applies EXIF orientation, handles alpha and grayscale', async () => {
    const raw = { raw: { width: 200, height: 160, channels: 3 as const } };
    const jpeg = await sharp(picture(200, 160), raw).jpeg({ quality: 95 }).toBuffer();
    const png = await sharp(picture(200, 160), raw).png().toBuffer();
    const webp = await sharp(picture(200, 160), raw).webp({ lossless: true }).toBuffer();
    const rgba = await sharp(picture(200, 160, 4), { raw: { width: 200, height: 160, channels: 4 } }).png().toBuffer();
    const gray = await sharp(picture(200, 160), raw).grayscale().png().toBuffer();
    // The same picture stored rotated, with EXIF saying how to turn it upright.
    const stored = await sharp(png).rotate(270).toBuffer();
    const oriented = await sharp(stored).withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toBuffer();
    const upright = await sharp(png).jpeg({ quality: 100 }).toBuffer();

    const res = await embed([jpeg, png, webp, rgba, gray, oriented, upright]);
    expect(res.modelId).toMatch(/^face-resnet128:[0-9a-f]{12}$/);
    const v = res.embeddings;
    for (const e of v) expect(e).toHaveLength(128);
    expect(maxDiff(v[1], v[2])).toBeLessThan(0.02); // WebP decodes to nearly the PNG's pixels
    expect(maxDiff(v[0], v[1])).toBeLessThan(0.05); // JPEG q95 is close to the PNG
    expect(maxDiff(v[5], v[6])).toBeLessThan(0.02); // EXIF orientation applied
    expect(maxDiff(v[1], v[3])).toBeGreaterThan(1e-4); // alpha flattened, not ignored
    expect(maxDiff(v[1], v[4])).toBeGreaterThan(1e-4); // grayscale expanded, still a different picture
  });

  it('64 concurrent calls give the same vectors as 64 sequential ones, in fewer model runs', async () => {
    const images = await Promise.all(
      Array.from({ length: 64 }, (_, i) => sharp(picture(120 + i, 150), { raw: { width: 120 + i, height: 150, channels: 3 } }).png().toBuffer()),
    );
    const runs = async () => Number(/yoco_embedder_batch_size_count\{[^}]*\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1] ?? 0);
    const before = await runs();
    const sequential: number[][] = [];
    for (const img of images) sequential.push((await embed([img])).embeddings[0]);
    const mid = await runs();
    expect(mid - before).toBe(64);
    const concurrent = (await Promise.all(images.map((img) => embed([img])))).map((r) => r.embeddings[0]);
    const after = await runs();
    for (let i = 0; i < 64; i++) expect(maxDiff(concurrent[i], sequential[i])).toBeLessThan(1e-4);
    expect(after - mid).toBeLessThan(64);
    expect(after - mid).toBeGreaterThanOrEqual(4);
  });

  it('refuses bad images with INVALID_ARGUMENT and a reason, and keeps serving', async () => {
    const png = await sharp(picture(100, 100), { raw: { width: 100, height: 100, channels: 3 } }).png().toBuffer();
    const jpeg = await sharp(picture(100, 100), { raw: { width: 100, height: 100, channels: 3 } }).jpeg().toBuffer();
    const big = await sharp(Buffer.alloc(2100 * 2100 * 3, 7), { raw: { width: 2100, height: 2100, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();
    const noise = await sharp(randomBytes(400 * 400 * 3), { raw: { width: 400, height: 400, channels: 3 } }).png().toBuffer();
    const zeroArea = Buffer.from(png);
    zeroArea.writeUInt32BE(0, 16); // IHDR width = 0
    expect(await status(embed([Buffer.alloc(0)]))).toBe('INVALID_ARGUMENT: image is empty (0 bytes)');
    expect(await status(embed([Buffer.from('definitely not a picture')]))).toMatch(/^INVALID_ARGUMENT: not a decodable image/);
    expect(await status(embed([jpeg.subarray(0, jpeg.length / 2)]))).toMatch(/^INVALID_ARGUMENT: image could not be decoded/);
    expect(await status(embed([noise]))).toMatch(/^INVALID_ARGUMENT: image is \d+ bytes, over the 307200-byte limit/);
    expect(await status(embed([big]))).toBe('INVALID_ARGUMENT: image is 2100 x 2100 = 4410000 pixels, over the 4000000-pixel limit');
    expect(await status(embed([zeroArea]))).toMatch(/^INVALID_ARGUMENT: (image has no area|not a decodable image)/);
    expect(await status(embed([png, Buffer.alloc(0)]))).toBe('INVALID_ARGUMENT: image 1: image is empty (0 bytes)');
    expect(await status(embed([]))).toBe('INVALID_ARGUMENT: no images to embed');
    expect((await embed([png])).embeddings[0]).toHaveLength(128);
  });
});
