import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { withDefaults } from '@yoco/common';
import { crop, resizePaddedSquare, toChw, type Rgb } from './raster.js';

/** A box in image pixels. */
export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Face {
  /** The detector's box, image pixels. */
  box: FaceBox;
  /** The detector's confidence, 0-1. */
  score: number;
  /** 68 points as x0, y0, x1, y1, ... in image pixels (iBUG 300-W order). */
  landmarks: Float32Array;
}

export interface FaceFinderOptions {
  /** The detector's input side (a multiple of 32): larger finds smaller faces, slower. */
  inputSize?: number;
  /** Detections below this confidence are dropped. */
  minScore?: number;
  /** Overlapping detections above this IoU are merged (the best kept). */
  iouThreshold?: number;
  /** ONNX Runtime intra-op threads (0: one per core). */
  threads?: number;
}

export const FACE_FINDER_DEFAULTS: Required<FaceFinderOptions> = { inputSize: 416, minScore: 0.5, iouThreshold: 0.4, threads: 0 };

/** The ONNX files the finder runs, in the models folder (built by buildModels). */
export const FACE_FINDER_MODELS = { detector: 'tiny-face-detector.onnx', landmarks: 'face-landmark68.onnx' } as const;

// face-api's constants (src/tinyFaceDetector/const.ts, src/faceFeatureExtractor/FaceFeatureExtractor.ts).
const ANCHORS = [
  [1.603231, 2.094468],
  [6.041143, 7.080126],
  [2.882459, 3.518061],
  [4.266906, 5.178857],
  [9.041765, 10.66308],
];
const DETECTOR_MEAN = [117.001, 114.697, 97.404];
const LANDMARK_MEAN = [122.782, 117.001, 104.298];
const UNIT = [255, 255, 255];
const LANDMARK_SIZE = 112;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function iou(a: FaceBox, b: FaceBox): number {
  const w = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const h = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** A box clipped to the image and floored to whole pixels, as face-api's Box.clipAtImageBorders. */
export function clipBox(box: FaceBox, width: number, height: number): FaceBox {
  const x = Math.max(box.x, 0);
  const y = Math.max(box.y, 0);
  return {
    x: Math.floor(x),
    y: Math.floor(y),
    width: Math.floor(Math.min(box.x + box.width - x, width - x)),
    height: Math.floor(Math.min(box.y + box.height - y, height - y)),
  };
}

/**
 * Finds faces in a frame and their 68 landmarks with face-api's tiny face
 * detector and landmark net, rebuilt as ONNX graphs; the pre- and
 * post-processing follow face-api's code step for step, so that boxes and
 * points are face-api's (the fidelity test holds us to that).
 */
export class FaceFinder {
  readonly options: Required<FaceFinderOptions>;

  private constructor(
    private readonly detector: InferenceSession,
    private readonly landmarker: InferenceSession,
    options: FaceFinderOptions,
  ) {
    this.options = withDefaults(FACE_FINDER_DEFAULTS, options);
    const { inputSize, minScore, iouThreshold } = this.options;
    if (!Number.isInteger(inputSize) || inputSize < 64 || inputSize % 32 !== 0) throw new RangeError(`face detector input size ${inputSize} is not a multiple of 32 of at least 64`);
    if (!(minScore > 0 && minScore < 1)) throw new RangeError(`face detector minimum score ${minScore} is not in (0, 1)`);
    if (!(iouThreshold > 0 && iouThreshold <= 1)) throw new RangeError(`face detector IoU threshold ${iouThreshold} is not in (0, 1]`);
  }

  static async create(modelsDir: string, options: FaceFinderOptions = {}): Promise<FaceFinder> {
    const session = (file: string) =>
      InferenceSession.create(readFileSync(join(modelsDir, file)), { intraOpNumThreads: options.threads ?? 0, graphOptimizationLevel: 'all' });
    return new FaceFinder(await session(FACE_FINDER_MODELS.detector), await session(FACE_FINDER_MODELS.landmarks), options);
  }

  /** Every face, best detection first. */
  async find(img: Rgb): Promise<Face[]> {
    const found = await this.detect(img);
    if (found.length === 0) return [];
    const landmarks = await this.landmarks(img, found.map((f) => f.box));
    return found.map((f, i) => ({ ...f, landmarks: landmarks[i] }));
  }

  /** Detections after non-maximum suppression, best first (face-api's TinyYolov2Base.detect). */
  async detect(img: Rgb): Promise<{ box: FaceBox; score: number }[]> {
    const size = this.options.inputSize;
    const square = resizePaddedSquare(img, size, false);
    const out = await this.detector.run({ image: new Tensor('float32', toChw(square, DETECTOR_MEAN, UNIT), [1, 3, size, size]) });
    const grid = out.grid.data as Float32Array;
    const cells = out.grid.dims[2];
    const scale = size / Math.max(img.width, img.height);
    // The part of the square the image fills, as face-api rounds it.
    const fx = size / Math.round(img.width * scale);
    const fy = size / Math.round(img.height * scale);
    const at = (anchor: number, k: number, row: number, col: number) => grid[((anchor * 5 + k) * cells + row) * cells + col];
    const candidates: { box: FaceBox; score: number }[] = [];
    for (let row = 0; row < cells; row++) {
      for (let col = 0; col < cells; col++) {
        for (let a = 0; a < ANCHORS.length; a++) {
          const score = sigmoid(at(a, 4, row, col));
          if (score <= this.options.minScore) continue;
          const cx = ((col + sigmoid(at(a, 0, row, col))) / cells) * fx;
          const cy = ((row + sigmoid(at(a, 1, row, col))) / cells) * fy;
          const w = ((Math.exp(at(a, 2, row, col)) * ANCHORS[a][0]) / cells) * fx;
          const h = ((Math.exp(at(a, 3, row, col)) * ANCHORS[a][1]) / cells) * fy;
          // Relative to the image for now; NMS compares them as face-api does, at the input's scale.
          candidates.push({ box: { x: cx - w / 2, y: cy - h / 2, width: w, height: h }, score });
        }
      }
    }
    candidates.sort((p, q) => q.score - p.score);
    const kept: { box: FaceBox; score: number }[] = [];
    for (const c of candidates) if (kept.every((k) => iou(k.box, c.box) <= this.options.iouThreshold)) kept.push(c);
    return (
      kept
        .map(({ box, score }) => ({
          score,
          box: { x: box.x * img.width, y: box.y * img.height, width: box.width * img.width, height: box.height * img.height },
        }))
        // A detection in the padding (below or right of a non-square frame) has no pixels to put landmarks on.
        .filter((f) => {
          const c = clipBox(f.box, img.width, img.height);
          return c.width > 0 && c.height > 0;
        })
    );
  }

  /** 68 points per box, in image pixels (face-api's FaceLandmark68Net on the box's crop). */
  async landmarks(img: Rgb, boxes: FaceBox[]): Promise<Float32Array[]> {
    const per = 3 * LANDMARK_SIZE * LANDMARK_SIZE;
    const input = new Float32Array(boxes.length * per);
    const crops = boxes.map((box, i) => {
      const c = clipBox(box, img.width, img.height);
      if (c.width <= 0 || c.height <= 0) throw new RangeError(`face box ${JSON.stringify(box)} lies outside the ${img.width} x ${img.height} image`);
      toChw(resizePaddedSquare(crop(img, c.x, c.y, c.width, c.height), LANDMARK_SIZE, true), LANDMARK_MEAN, UNIT, input, i * per);
      return c;
    });
    const out = (await this.landmarker.run({ face: new Tensor('float32', input, [boxes.length, 3, LANDMARK_SIZE, LANDMARK_SIZE]) })).landmarks.data as Float32Array;
    return crops.map((c, i) => {
      const s = LANDMARK_SIZE / Math.max(c.width, c.height);
      const w = c.width * s;
      const h = c.height * s;
      const padX = w < h ? Math.abs(w - h) / 2 : 0;
      const padY = h < w ? Math.abs(w - h) / 2 : 0;
      // face-api shifts the points by the detection box's own corner, not the floored crop's; we do
      // the same (a fraction of a pixel) unless the box was clipped, where its corner is off the image.
      const box = boxes[i];
      const shiftX = box.x < 0 ? c.x : box.x;
      const shiftY = box.y < 0 ? c.y : box.y;
      const pts = new Float32Array(136);
      for (let p = 0; p < 68; p++) {
        pts[2 * p] = ((out[i * 136 + 2 * p] * LANDMARK_SIZE - padX) / w) * c.width + shiftX;
        pts[2 * p + 1] = ((out[i * 136 + 2 * p + 1] * LANDMARK_SIZE - padY) / h) * c.height + shiftY;
      }
      return pts;
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.detector.release(), this.landmarker.release()]);
  }
}
