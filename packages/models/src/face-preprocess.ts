import { cropFace, faceQuality, selectFace, type FaceCropMode, type FaceQuality, type FaceSelect } from './face-crop.js';
import type { Face, FaceBox, FaceFinder } from './face-finder.js';
import { FaceError } from './errors/index.js';
import { decodeRgb, DEFAULT_IMAGE_LIMITS, type ImageLimits } from './preprocess.js';
import type { ModelProfile } from './profiles.js';
import { toChw } from './raster.js';

export interface FaceOptions {
  crop: Exclude<FaceCropMode, 'none'>;
  select: FaceSelect;
}

/** The face a vector was made from, as the embedder reports it. */
export interface FaceReport {
  box: FaceBox;
  score: number;
  landmarks: Float32Array;
  facesFound: number;
  quality: FaceQuality;
}

/**
 * A camera frame to the face profile's input: decode, find the faces, pick
 * one, crop it (aligned by default) to the descriptor's size. No face, or
 * several with FACE_SELECT=only, is a FaceError.
 */
export async function preprocessFace(
  bytes: Uint8Array,
  profile: ModelProfile,
  finder: FaceFinder,
  options: FaceOptions,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): Promise<{ input: Float32Array; face: FaceReport }> {
  const img = await decodeRgb(bytes, limits);
  // Landmarks for the chosen face only: the choice needs boxes alone, and a group photo has many.
  const faces = await finder.detect(img);
  const { face: chosen, problem } = selectFace(faces, options.select);
  if (!chosen) throw new FaceError(problem ?? 'no face found', faces.length === 0 ? 'NO_FACE' : 'FACE_SELECT');
  const [landmarks] = await finder.landmarks(img, [chosen.box]);
  const face: Face = { ...chosen, landmarks };
  const [h, w] = profile.size;
  if (h !== w) throw new RangeError(`profile ${profile.id}: a face crop is square, but the input is ${w} x ${h}`);
  const cropped = cropFace(img, face, options.crop, w);
  // Quality is judged on the aligned crop whatever the mode: it is what a gate's camera gives the descriptor.
  const aligned = options.crop === 'aligned' ? cropped : cropFace(img, face, 'aligned', w);
  return {
    input: toChw(cropped, profile.mean, profile.std),
    face: { box: face.box, score: face.score, landmarks: face.landmarks, facesFound: faces.length, quality: faceQuality(face, aligned) },
  };
}
