import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alteredCopy, DEMO_PHOTOS } from '@yoco/cli';
import type { LocalCluster } from '@yoco/devkit';
import { PROFILES } from '@yoco/models';
import { isServiceError, statusName, unary } from '@yoco/rpc';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster } from '../support/cluster.js';
import { connect, flushPrefix, testPrefix } from '../support/redis.js';

/** Debian's opencv-doc photos (.ci/run installs the package); the committed demo photos otherwise. */
const OPENCV = '/usr/share/doc/opencv-doc/examples/data';
const PHOTO_DIR = existsSync(OPENCV) ? OPENCV : DEMO_PHOTOS;
const photos = readdirSync(PHOTO_DIR)
  .filter((f) => /\.jpg$/i.test(f))
  .sort()
  .slice(0, 30)
  .map((f) => ({ id: `img-${f.replace(/\.jpg$/i, '').replace(/[^A-Za-z0-9._:@-]/g, '_')}`, bytes: readFileSync(join(PHOTO_DIR, f)) }));

/**
 * Open set, 30 OpenCV photos: the first 20 enrolled, altered copies of all 30 as probes (80% crop, resized,
 * brighter, JPEG q45), at the server's threshold (0.5). Measured through the cluster:
 * - resnet50-ms3840 (seeded, untrained): rank-1 12/20, accepted as themselves 11/20;
 * - face-resnet128: rank-1 19/20, accepted 19/20.
 * The bounds leave one photo of margin (the pipeline is deterministic; another CPU's float kernels can flip a
 * near tie). Impostors (the 10 never enrolled) are printed, not bounded: today all 10 are accepted as someone
 * with either profile (best impostor scores 0.93 and 1.00): these are whole scenes, not aligned faces, scored by
 * an untrained metric head. Rejecting them is step 10's work (face detection, a trained head, FPIR).
 */
const BOUNDS = { 'resnet50-ms3840': { hits: 11, accepted: 10 }, 'face-resnet128': { hits: 18, accepted: 18 } } as const;

const prefixes: string[] = [];
afterAll(async () => {
  const redis = connect();
  for (const p of prefixes) await flushPrefix(redis, p);
  redis.disconnect();
});

describe.each(Object.keys(BOUNDS) as (keyof typeof BOUNDS)[])('images end to end with %s', (name) => {
  let cluster: LocalCluster;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('enrols 20 photos by image, finds and accepts altered copies of them (bounds near measured), refuses bad images and keeps serving', async () => {
    const profile = PROFILES[name];
    const prefix = testPrefix(`img-${name}`);
    prefixes.push(prefix);
    cluster = await startCluster(prefix, {
      shards: 2,
      // Whole scenes, not faces: the face profile takes each as its crop (FACE_CROP=none).
      embedder: { profile: name, env: { MAX_IMAGE_BYTES: String(2 * 1024 * 1024), MAX_IMAGE_PIXELS: String(1500 * 1500), FACE_CROP: 'none' } },
      env: { YOCO_DIM: String(profile.dim), YOCO_HIDDEN: String(profile.headHidden ?? 512), YOCO_HEAD_TAU: String(profile.headTau), YOCO_HEAD_ALPHA: String(profile.headAlpha), YOCO_MODEL_ID: name },
      coordinatorEnv: { MAX_IMAGE_BYTES: String(2 * 1024 * 1024) },
    });
    const client = cluster.matcherClient();
    // Open set: the first 20 photos are enrolled, the last 10 are people the gallery never saw (impostors).
    const enrolled = photos.slice(0, 20);
    const strangers = photos.slice(20);
    let token = '';
    for (const p of enrolled) {
      const r = await unary(client, 'Enrol', { subjectId: p.id, probes: [{ image: p.bytes }], wait: true }, { deadline: Date.now() + 60_000 });
      token = r.consistencyToken;
    }
    let hits = 0;
    let accepted = 0;
    let impostorsAccepted = 0;
    let impostorBest = 0;
    for (const p of photos) {
      const res = await unary(
        client,
        'Identify',
        { probe: { image: await alteredCopy(p.bytes) }, topK: 3, consistencyToken: token },
        { deadline: Date.now() + 60_000 },
      );
      const top = res.matches[0];
      if (strangers.includes(p)) {
        if (top?.accepted) impostorsAccepted++;
        impostorBest = Math.max(impostorBest, top?.score ?? 0);
      } else {
        if (top?.subjectId === p.id) hits++;
        if (top?.subjectId === p.id && top.accepted) accepted++;
      }
    }
    const recall = hits / enrolled.length;
    console.log(
      `${name}: recall@1 ${recall.toFixed(2)} (${hits}/${enrolled.length}), genuine accepted ${accepted}/${enrolled.length}, impostors accepted ${impostorsAccepted}/${strangers.length} (best impostor score ${impostorBest.toFixed(3)}) from ${PHOTO_DIR}`,
    );
    const bounds = BOUNDS[name];
    expect(hits).toBeGreaterThanOrEqual(bounds.hits);
    expect(accepted).toBeGreaterThanOrEqual(bounds.accepted);

    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'OK',
        (err) => (isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : String(err)),
      );
    const identify = (image: Buffer) => unary(client, 'Identify', { probe: { image } }, { deadline: Date.now() + 30_000 });
    const huge = await sharp(randomBytes(1200 * 1200 * 3), { raw: { width: 1200, height: 1200, channels: 3 } }).png().toBuffer();
    expect(await code(identify(Buffer.alloc(0)))).toBe('INVALID_ARGUMENT: image is empty (0 bytes)');
    expect(await code(identify(Buffer.from('%PDF-1.4 not an image')))).toMatch(/^INVALID_ARGUMENT: not a decodable image/);
    expect(await code(identify(photos[0].bytes.subarray(0, photos[0].bytes.length >> 1)))).toMatch(/^INVALID_ARGUMENT: image could not be decoded/);
    expect(await code(identify(huge))).toMatch(/^INVALID_ARGUMENT: image is \d+ bytes, over the 2097152-byte limit/);
    const wide = await sharp(Buffer.alloc(1600 * 1600 * 3, 90), { raw: { width: 1600, height: 1600, channels: 3 } }).png().toBuffer();
    expect(await code(identify(wide))).toBe('INVALID_ARGUMENT: image is 1600 x 1600 = 2560000 pixels, over the 2250000-pixel limit');
    const zeroArea = await sharp(Buffer.alloc(8 * 8 * 3, 90), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
    zeroArea.writeUInt32BE(0, 16); // IHDR width = 0
    expect(await code(identify(zeroArea))).toMatch(/^INVALID_ARGUMENT: (image has no area|not a decodable image)/);
    expect(await code(unary(client, 'Enrol', { subjectId: 'bad-img', probes: [{ image: photos[1].bytes }, { image: Buffer.from('nope') }] }, { deadline: Date.now() + 30_000 }))).toMatch(
      /^INVALID_ARGUMENT: probe 1: not a decodable image/,
    );
    expect(await code(unary(client, 'GetSubject', { subjectId: 'bad-img' }, { deadline: Date.now() + 5000 }))).toMatch(/^NOT_FOUND/);
    const verify = await unary(client, 'Verify', { subjectId: photos[2].id, probe: { image: photos[2].bytes } }, { deadline: Date.now() + 30_000 });
    expect(verify.match).toBe(true);
  });
});
