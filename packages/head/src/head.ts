/**
 * A Siamese head in the one form we compile:
 *   logit(q, g) = w2 · relu(W1 · [q; g] + b1) + b2,   score = sigmoid(logit)
 * W1 is H x 2D row-major, so its left half is A (acts on q) and its right
 * half is B (acts on g): the factorization the `factorized` engine relies on.
 */
export interface Head {
  /** D: the width of one image vector. */
  readonly dim: number;
  /** H: the number of hidden units (C1 kernels). */
  readonly hidden: number;
  /** How the ONNX file lays out its input: conv [B, 2D, N] or dense [N, 2D]. */
  readonly form: 'conv' | 'dense';
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  readonly w2: Float32Array;
  readonly b2: number;
  /** Whether the file ends in a Sigmoid; scores are probabilities either way. */
  readonly sigmoid: boolean;
  readonly opset: number;
  /** The model as loaded (the `yoco` engine runs it). */
  readonly bytes: Uint8Array;
  /** sha256 of the bytes, hex, first 16 characters: names the head in status and logs. */
  readonly id: string;
  /** Graph names the yoco engine needs to feed and fetch. */
  readonly graph: HeadGraph;
}

export interface HeadGraph {
  readonly inputName: string;
  /** Rank of the pair input: 3 for conv [B, 2D, N], 2 or 3 for dense ([N, 2D] or [B, N, 2D]). */
  readonly inputRank: number;
  /** The value holding C2's output before any Sigmoid. */
  readonly logitName: string;
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
