import type { v1 } from '@yoco/rpc';

/** What a face must meet to become a template (ENROL_FACE_GATE). */
export interface FaceGate {
  /** Pixels between the eye centres, at least. */
  minEyeDistancePx: number;
  /** Variance of the Laplacian of the aligned crop, at least. */
  minSharpness: number;
  /** Degrees from frontal, at most (90: no limit). */
  maxYawDeg: number;
}

/**
 * Why a face may not be enrolled, or undefined when it may. A bad template
 * costs every later search of that person, so the gate is stricter than what
 * Identify accepts (which takes any face the detector finds).
 */
export function faceGateProblem(face: v1.Face__Output, gate: FaceGate): string | undefined {
  const q = face.quality;
  if (!q) return undefined;
  if (q.eyeDistancePx < gate.minEyeDistancePx) {
    return `face too small: ${q.eyeDistancePx.toFixed(1)} px between the eyes, at least ${gate.minEyeDistancePx} wanted (ENROL_FACE_GATE eyes=)`;
  }
  if (q.sharpness < gate.minSharpness) return `face too blurred: sharpness ${q.sharpness.toFixed(1)}, at least ${gate.minSharpness} wanted (ENROL_FACE_GATE sharpness=)`;
  if (Math.abs(q.yawDeg) > gate.maxYawDeg) return `face turned too far: ${Math.abs(q.yawDeg).toFixed(0)} degrees from frontal, at most ${gate.maxYawDeg} wanted (ENROL_FACE_GATE yaw=)`;
  return undefined;
}
