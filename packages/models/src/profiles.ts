import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** How an image becomes the model's input tensor, and what comes out. */
export interface ModelProfile {
  /** Stable id, reported by the embedder and recorded with vectors. */
  id: string;
  /** The ONNX file, relative to the models directory (or absolute). */
  model: string;
  input: string;
  output: string;
  /** Input height and width. */
  size: [number, number];
  /** Per-channel mean and std, on 0-255 pixel values, in channel order. */
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: 'rgb' | 'bgr';
  /** squash: resize to size ignoring aspect; pad: pad to square (centred, black), then resize. */
  fit: 'squash' | 'pad';
  /** Output width D. */
  dim: number;
  /** The input is a camera frame: find, align and crop the face first (face-api's detector and landmarks; FACE_CROP=none turns it off). */
  faces?: boolean;
  /** Euclidean distance at which this model's vectors stop meaning "same": the metric head's tau for it. */
  headTau?: number;
  /** The metric head's steepness for this model's distances. */
  headAlpha?: number;
  /** The metric head's hidden units for this model (2 x dim makes it measure the distance exactly). */
  headHidden?: number;
  notes?: string;
}

export const PROFILES: Record<'resnet50-ms3840' | 'face-resnet128', ModelProfile> = {
  'resnet50-ms3840': {
    id: 'resnet50-ms3840',
    model: 'resnet50-ms3840.onnx',
    input: 'image',
    output: 'embedding',
    size: [224, 224],
    mean: [123.675, 116.28, 103.53],
    std: [58.395, 57.12, 57.375],
    channelOrder: 'rgb',
    fit: 'squash',
    dim: 3840,
    // Measured on OpenCV's sample photos against altered copies: same-scene distances ~0.11-0.16 (median), others ~0.26-0.33.
    headTau: 0.15,
    headAlpha: 40,
    notes: 'ResNet50 stages pooled, L2-normalised per stage, concatenated; seeded (untrained) weights',
  },
  'face-resnet128': {
    id: 'face-resnet128',
    model: 'face-resnet128.onnx',
    input: 'image',
    output: 'descriptor',
    size: [150, 150],
    mean: [122.782, 117.001, 104.298],
    std: [255, 255, 255],
    channelOrder: 'rgb',
    fit: 'pad',
    dim: 128,
    faces: true,
    // face-api's own rule: descriptors of the same person are closer than 0.6.
    headTau: 0.6,
    headAlpha: 20,
    headHidden: 256,
    notes: "face-api's FaceRecognitionNet (pretrained), rebuilt from @vladmandic/face-api's weights; finds, aligns and crops the face in a frame first",
  },
};

/** Where @vladmandic/face-api keeps its weights. */
export function faceApiModelDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
}
