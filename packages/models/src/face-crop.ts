import { clipBox, type Face, type FaceBox } from './face-finder.js';
import { crop, laplacianVariance, resizePaddedSquare, warpAffine, type Rgb } from './raster.js';

/**
 * How the descriptor's input is cut from the frame:
 * - aligned: a similarity transform (rotation, scale, shift) puts the eyes
 *   level and the eye-mouth triangle where face-api's crop has it upright;
 * - box: face-api's own crop, an axis-aligned box from the same landmarks
 *   (dlib's rule), for comparison with face-api;
 * - none: the whole image is the face (pre-cropped input).
 */
export type FaceCropMode = 'aligned' | 'box' | 'none';
export const FACE_CROP_MODES: readonly FaceCropMode[] = ['aligned', 'box', 'none'];

// face-api's FaceLandmarks.alignDlib: the reference point sits at (0.5, 0.43) of a
// square whose side is the mean eye-to-mouth distance / 0.45.
const REL_X = 0.5;
const REL_Y = 0.43;
const REL_SCALE = 0.45;

function centre(pts: Float32Array, from: number, to: number): [number, number] {
  let x = 0;
  let y = 0;
  for (let i = from; i < to; i++) {
    x += pts[2 * i];
    y += pts[2 * i + 1];
  }
  return [x / (to - from), y / (to - from)];
}

/** The centres of the left eye, the right eye and the mouth (face-api's reference points). */
export function referencePoints(landmarks: Float32Array): { leftEye: [number, number]; rightEye: [number, number]; mouth: [number, number] } {
  return { leftEye: centre(landmarks, 36, 42), rightEye: centre(landmarks, 42, 48), mouth: centre(landmarks, 48, 68) };
}

function geometry(landmarks: Float32Array) {
  const { leftEye, rightEye, mouth } = referencePoints(landmarks);
  const eyeToMouth = (Math.hypot(mouth[0] - leftEye[0], mouth[1] - leftEye[1]) + Math.hypot(mouth[0] - rightEye[0], mouth[1] - rightEye[1])) / 2;
  const ref: [number, number] = [(leftEye[0] + rightEye[0] + mouth[0]) / 3, (leftEye[1] + rightEye[1] + mouth[1]) / 3];
  return { leftEye, rightEye, eyeToMouth, ref };
}

/**
 * face-api's descriptor box (FaceLandmarks.alignDlib, then clipAtImageBorders),
 * including its quirk of bounding the side by the detection crop's size.
 */
export function dlibBox(face: Face, img: { width: number; height: number }): FaceBox {
  const { eyeToMouth, ref } = geometry(face.landmarks);
  const size = Math.floor(eyeToMouth / REL_SCALE);
  const x = Math.floor(Math.max(0, ref[0] - REL_X * size));
  const y = Math.floor(Math.max(0, ref[1] - REL_Y * size));
  const detection = clipBox(face.box, img.width, img.height);
  return clipBox({ x, y, width: Math.min(size, detection.width + x), height: Math.min(size, detection.height + y) }, img.width, img.height);
}

/**
 * The affine map from output pixels to frame pixels that rotates the eye line
 * level and scales the eye-mouth distance to face-api's crop geometry.
 */
export function alignmentTransform(landmarks: Float32Array, size: number): number[] {
  const { leftEye, rightEye, eyeToMouth, ref } = geometry(landmarks);
  const angle = Math.atan2(rightEye[1] - leftEye[1], rightEye[0] - leftEye[0]);
  // Frame pixels per output pixel.
  const s = eyeToMouth / REL_SCALE / size;
  const cos = Math.cos(angle) * s;
  const sin = Math.sin(angle) * s;
  const ox = REL_X * size;
  const oy = REL_Y * size;
  // frame = ref + R(angle) * s * (out - o)
  return [cos, -sin, ref[0] - cos * ox + sin * oy, sin, cos, ref[1] - sin * ox - cos * oy];
}

/** The descriptor's `size` x `size` input for a face, in the mode asked for. */
export function cropFace(img: Rgb, face: Face | undefined, mode: FaceCropMode, size: number): Rgb {
  if (mode === 'none' || !face) return resizePaddedSquare(img, size, true);
  if (mode === 'box') {
    const b = dlibBox(face, img);
    return resizePaddedSquare(crop(img, b.x, b.y, b.width, b.height), size, true);
  }
  return warpAffine(img, size, alignmentTransform(face.landmarks, size));
}

/** What the enrolment gate judges a face by. */
export interface FaceQuality {
  /** Distance between the eye centres, frame pixels. */
  eyeDistancePx: number;
  /** Variance of the Laplacian of the aligned crop's luma (focus). */
  sharpness: number;
  /** Head turn left or right, degrees, estimated from the 2D landmarks (0 = frontal). */
  yawDeg: number;
  /** In-plane tilt of the eye line, degrees (alignment undoes it). */
  rollDeg: number;
}

/**
 * Yaw from the nose tip's place between the jaw's ends in the roll-corrected
 * frame: on a cylinder of the jaw's half-width, a point at the front moves by
 * sin(yaw) of it. A rough estimate (about 5-10 degrees), enough to refuse profiles.
 */
export function faceQuality(face: Face, aligned: Rgb): FaceQuality {
  const p = face.landmarks;
  const { leftEye, rightEye } = referencePoints(p);
  const roll = Math.atan2(rightEye[1] - leftEye[1], rightEye[0] - leftEye[0]);
  const along = (i: number) => p[2 * i] * Math.cos(roll) + p[2 * i + 1] * Math.sin(roll);
  const left = along(0);
  const right = along(16);
  const half = (right - left) / 2;
  const offset = half > 0 ? (along(30) - (left + right) / 2) / half : 1;
  return {
    eyeDistancePx: Math.hypot(rightEye[0] - leftEye[0], rightEye[1] - leftEye[1]),
    sharpness: laplacianVariance(aligned),
    yawDeg: (Math.asin(Math.max(-1, Math.min(1, offset))) * 180) / Math.PI,
    rollDeg: (roll * 180) / Math.PI,
  };
}

/** Which face of several is used. */
export type FaceSelect = 'largest' | 'best' | 'only';
export const FACE_SELECTS: readonly FaceSelect[] = ['largest', 'best', 'only'];

/** The face to use (by its detection: box and score), or why none can be; throws nothing. */
export function selectFace<F extends { box: FaceBox; score: number }>(faces: F[], select: FaceSelect): { face?: F; problem?: string } {
  if (faces.length === 0) return { problem: 'no face found' };
  if (select === 'only' && faces.length > 1) return { problem: `${faces.length} faces found; send an image with one face (FACE_SELECT=only)` };
  if (select === 'best' || select === 'only') return { face: faces[0] };
  return { face: faces.reduce((a, b) => (b.box.width * b.box.height > a.box.width * a.box.height ? b : a)) };
}
