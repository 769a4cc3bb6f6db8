import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  buildModels,
  cropFace,
  decodeRgb,
  FaceError,
  FaceFinder,
  faceApiModelDir,
  faceQuality,
  MODELS_DIR,
  preprocessFace,
  PROFILES,
  selectFace,
  toChw,
  type Face,
  type FaceCropMode,
  type Rgb,
} from '@yoco/models';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
/** face-api's own sample photos, shipped in its npm package: 20 faces in 6 group photos. */
const SAMPLES = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
const sample = (n: number) => readFileSync(join(SAMPLES, `sample${n}.jpg`));
const profile = PROFILES['face-resnet128'];

let finder: FaceFinder;
let descriptorNet: InferenceSession;

beforeAll(async () => {
  await buildModels(MODELS_DIR);
  finder = await FaceFinder.create(MODELS_DIR, { threads: 2 });
  descriptorNet = await InferenceSession.create(readFileSync(join(MODELS_DIR, profile.model)), { intraOpNumThreads: 2 });
});

afterAll(async () => {
  await finder?.close();
  await descriptorNet?.release();
});

async function describeFace(img: Rgb, face: Face, mode: FaceCropMode): Promise<Float32Array> {
  const input = toChw(cropFace(img, face, mode, 150), profile.mean, profile.std);
  return (await descriptorNet.run({ [profile.input]: new Tensor('float32', input, [1, 3, 150, 150]) }))[profile.output].data as Float32Array;
}

const distance = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v, i) => s + (v - b[i]) ** 2, 0));

function iou(a: { x: number; y: number; width: number; height: number }, b: { x: number; y: number; width: number; height: number }): number {
  const w = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const h = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  return (w * h) / (a.width * a.height + b.width * b.height - w * h);
}

/** face-api itself on TensorFlow.js (wasm backend): tiny face detector, 68 landmarks, descriptors. */
async function faceApi() {
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const tf = faceapi.tf;
  await tf.setBackend('wasm');
  await tf.ready();
  for (const [net, name] of [
    [faceapi.nets.tinyFaceDetector, 'tiny_face_detector_model'],
    [faceapi.nets.faceLandmark68Net, 'face_landmark_68_model'],
    [faceapi.nets.faceRecognitionNet, 'face_recognition_model'],
  ]) {
    const manifest = JSON.parse(readFileSync(join(faceApiModelDir(), `${name}-weights_manifest.json`), 'utf8'));
    const bin = readFileSync(join(faceApiModelDir(), `${name}.bin`));
    net.loadFromWeightMap(tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length), manifest[0].weights));
  }
  return async (img: Rgb) => {
    const input = tf.tensor3d(Float32Array.from(img.data), [img.height, img.width, 3]);
    const found = await faceapi.detectAllFaces(input, new faceapi.TinyFaceDetectorOptions()).withFaceLandmarks().withFaceDescriptors();
    input.dispose();
    return found as { detection: { box: { x: number; y: number; width: number; height: number } }; landmarks: { positions: { x: number; y: number }[] }; descriptor: Float32Array }[];
  };
}

describe('the face pipeline against face-api itself, on the sample photos face-api ships', () => {
  // Measured (wasm backend): every box IoU 1.00000, landmarks at most 4.8e-4 px apart, descriptors in
  // face-api's crop at most 1.5e-6 apart. The bounds are the issue's: IoU >= 0.9, 2 px, 1e-3.
  it('finds the same faces (IoU >= 0.9), the same landmarks (within 2 px) and, in its crop mode, the same descriptors (within 1e-3)', async () => {
    const reference = await faceApi();
    let faces = 0;
    let worstIou = 1;
    let worstPoint = 0;
    let worstDescriptor = 0;
    for (let n = 1; n <= 6; n++) {
      const img = await decodeRgb(sample(n));
      const want = await reference(img);
      const got = await finder.find(img);
      expect(got.length).toBe(want.length);
      expect(want.length).toBeGreaterThan(0);
      for (let i = 0; i < want.length; i++) {
        const w = want[i];
        const g = got[i];
        worstIou = Math.min(worstIou, iou(w.detection.box, g.box));
        w.landmarks.positions.forEach((p, k) => (worstPoint = Math.max(worstPoint, Math.hypot(p.x - g.landmarks[2 * k], p.y - g.landmarks[2 * k + 1]))));
        worstDescriptor = Math.max(worstDescriptor, distance(await describeFace(img, g, 'box'), w.descriptor));
        faces++;
      }
    }
    console.log(`face pipeline vs face-api, ${faces} faces in 6 photos: worst box IoU ${worstIou.toFixed(5)}, worst landmark ${worstPoint.toExponential(2)} px, worst descriptor (box crop) ${worstDescriptor.toExponential(2)}`);
    expect(faces).toBe(20);
    expect(worstIou).toBeGreaterThanOrEqual(0.9);
    expect(worstPoint).toBeLessThanOrEqual(2);
    expect(worstDescriptor).toBeLessThanOrEqual(1e-3);
  });
});

describe('invariance: a face pasted into larger frames', () => {
  // Measured: all 25 pasted faces found and identified, aligned self-distance at most 0.14 (nearest other
  // face 0.41 or more); face-api's box crop, which does not undo the tilt, drifts to 0.46 at 15 degrees.
  // The detector runs at FACE_MIN_SCORE=0.4 here: at the default 0.5 it misses one of the 25 (a 190 px face
  // tilted 15 degrees in a 1400 px frame scores 0.43). What is judged here is the descriptor's invariance.
  it('identifies as itself at other positions, scales (0.7-1.3) and rotations up to 15 degrees, and alignment undoes the tilt', async () => {
    const finder = await FaceFinder.create(MODELS_DIR, { threads: 2, minScore: 0.4 });
    const gallery: { id: string; aligned: Float32Array; box: Float32Array }[] = [];
    const sources: { id: string; bytes: Buffer; face: Face }[] = [];
    for (let n = 1; n <= 6; n++) {
      const bytes = sample(n);
      const img = await decodeRgb(bytes);
      const faces = await finder.find(img);
      for (const [i, f] of faces.entries()) gallery.push({ id: `${n}.${i}`, aligned: await describeFace(img, f, 'aligned'), box: await describeFace(img, f, 'box') });
      // Heads already tilted (one leans 46 degrees, sample 2's only face 17) would be tilted well past 15 by the rotations below.
      const upright = faces.filter((f) => Math.abs(faceQuality(f, cropFace(img, f, 'aligned', 150)).rollDeg) <= 12);
      if (upright.length === 0) continue;
      const face = selectFace(upright, 'largest').face!;
      sources.push({ id: `${n}.${faces.indexOf(face)}`, bytes, face });
    }
    const W = 1400;
    const H = 1000;
    const background = { r: 70, g: 80, b: 90 };
    const canvas = await sharp({ create: { width: W, height: H, channels: 3, background } }).png().toBuffer();
    const moves = [
      { scale: 0.7, angle: -15, px: 0.1, py: 0.2 },
      { scale: 0.75, angle: 7, px: 0.9, py: 0.8 },
      { scale: 1, angle: 0, px: 0.3, py: 0.05 },
      { scale: 1.3, angle: 15, px: 0.7, py: 0.6 },
      { scale: 0.8, angle: -7, px: 0.05, py: 0.95 },
    ];
    const tilted: Record<'aligned' | 'box', number[]> = { aligned: [], box: [] };
    let worstSelf = 0;
    let closestOther = Infinity;
    for (const src of sources) {
      const b = src.face.box;
      const left = Math.max(0, Math.round(b.x - b.width / 2));
      const top = Math.max(0, Math.round(b.y - b.height / 2));
      const meta = await sharp(src.bytes).metadata();
      const width = Math.min(meta.width! - left, Math.round(2 * b.width));
      const height = Math.min(meta.height! - top, Math.round(2 * b.height));
      for (const m of moves) {
        const region = await sharp(src.bytes).extract({ left, top, width, height }).resize(Math.round(width * m.scale)).rotate(m.angle, { background }).png().toBuffer({ resolveWithObject: true });
        const x = Math.round(m.px * (W - region.info.width));
        const y = Math.round(m.py * (H - region.info.height));
        const frame = await sharp(canvas).composite([{ input: region.data, left: x, top: y }]).jpeg({ quality: 90 }).toBuffer();
        const img = await decodeRgb(frame);
        const found = await finder.find(img);
        // The pasted region holds neighbours' faces too: take the one at its centre.
        const cx = x + region.info.width / 2;
        const cy = y + region.info.height / 2;
        const off = (f: Face) => Math.hypot(f.box.x + f.box.width / 2 - cx, f.box.y + f.box.height / 2 - cy);
        const face = found.sort((p, q) => off(p) - off(q))[0];
        expect(face, `face ${src.id} moved ${JSON.stringify(m)}`).toBeDefined();
        for (const mode of ['aligned', 'box'] as const) {
          const d = await describeFace(img, face, mode);
          const ranked = gallery.map((g) => ({ id: g.id, d: distance(d, g[mode]) })).sort((p, q) => p.d - q.d);
          const self = ranked.find((r) => r.id === src.id)!.d;
          if (Math.abs(m.angle) >= 7) tilted[mode].push(self);
          if (mode !== 'aligned') continue;
          expect(ranked[0].id, `face ${src.id} moved ${JSON.stringify(m)}`).toBe(src.id);
          // face-api's own rule: the same person is closer than 0.6.
          expect(self).toBeLessThan(0.6);
          worstSelf = Math.max(worstSelf, self);
          closestOther = Math.min(closestOther, ranked.find((r) => r.id !== src.id)!.d);
        }
      }
    }
    const mean = (v: number[]) => v.reduce((a, c) => a + c, 0) / v.length;
    console.log(
      `invariance, ${sources.length} faces x ${moves.length} frames: aligned worst self-distance ${worstSelf.toFixed(3)}, closest other ${closestOther.toFixed(3)}; ` +
        `tilted 7-15 degrees, mean self-distance aligned ${mean(tilted.aligned).toFixed(3)} vs box ${mean(tilted.box).toFixed(3)}`,
    );
    expect(mean(tilted.aligned)).toBeLessThan(mean(tilted.box));
    await finder.close();
  });
});

describe('what the face profile does with frames', () => {
  it('no face: a FaceError (FAILED_PRECONDITION, NO_FACE) "no face found"', async () => {
    const sky = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 120, g: 170, b: 230 } } }).jpeg().toBuffer();
    const err = await preprocessFace(sky, profile, finder, { crop: 'aligned', select: 'largest' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FaceError);
    expect(err).toMatchObject({ message: 'no face found', code: 'NO_FACE' });
  });

  it('several faces: the largest by default, the most confident with best, refused with only; the report says which box', async () => {
    const bytes = sample(6);
    const faces = await finder.find(await decodeRgb(bytes));
    expect(faces.length).toBe(5);
    const area = (f: Face) => f.box.width * f.box.height;
    const largest = faces.reduce((a, b) => (area(b) > area(a) ? b : a));
    expect(largest).not.toBe(faces[0]);
    const byDefault = await preprocessFace(bytes, profile, finder, { crop: 'aligned', select: 'largest' });
    expect(byDefault.face.box).toEqual(largest.box);
    expect(byDefault.face.facesFound).toBe(5);
    expect((await preprocessFace(bytes, profile, finder, { crop: 'aligned', select: 'best' })).face.box).toEqual(faces[0].box);
    await expect(preprocessFace(bytes, profile, finder, { crop: 'aligned', select: 'only' })).rejects.toMatchObject({ code: 'FACE_SELECT', message: expect.stringMatching(/^5 faces found/) });
  });

  it('measures what the enrolment gate judges: eye distance, focus and head turn', async () => {
    const quality = async (bytes: Buffer) => {
      const img = await decodeRgb(bytes);
      const faces = await finder.find(img);
      return faces.map((f) => faceQuality(f, cropFace(img, f, 'aligned', 150)));
    };
    const [sharpFace] = await quality(sample(2));
    const [blurred] = await quality(await sharp(sample(2)).blur(3).jpeg().toBuffer());
    const [small] = await quality(await sharp(sample(2)).resize(480).jpeg().toBuffer());
    // Measured: 114 sharp, 10 at sigma 3; 82 px between the eyes, 20 at a quarter of the size.
    expect(sharpFace.sharpness).toBeGreaterThan(50);
    expect(blurred.sharpness).toBeLessThan(15);
    expect(sharpFace.eyeDistancePx).toBeGreaterThan(60);
    expect(small.eyeDistancePx).toBeLessThan(30);
    expect(small.eyeDistancePx / sharpFace.eyeDistancePx).toBeCloseTo(0.25, 1);
    // sample5: the woman at the bottom left looks at the camera, the one in the middle is in three-quarter view.
    const group = await quality(sample(5));
    const yaws = group.map((q) => Math.abs(q.yawDeg)).sort((a, b) => a - b);
    expect(yaws[0]).toBeLessThan(10);
    expect(yaws[yaws.length - 1]).toBeGreaterThan(40);
    // A mirrored frame turns the head the other way.
    const [mirrored] = await quality(await sharp(sample(2)).flop().jpeg({ quality: 95 }).toBuffer());
    expect(Math.sign(mirrored.yawDeg)).toBe(-Math.sign(sharpFace.yawDeg));
    expect(Math.abs(mirrored.yawDeg + sharpFace.yawDeg)).toBeLessThan(10);
  });
});
