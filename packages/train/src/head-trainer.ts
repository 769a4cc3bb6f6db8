import { Rng, withDefaults } from '@yoco/common';
import type { LabelledSet } from '@yoco/eval';
import { headToOnnx, parseHead, type Head } from '@yoco/head';
import { TrainingDataError } from './errors/index.js';
import { tfReady, type tf as TF, type TfBackend } from './tf-runtime.js';

export interface TrainOptions {
  /** Subjects per step (default 32). */
  subjectsPerStep?: number;
  /** Samples drawn per subject in a step (default 4). */
  samplesPerSubject?: number;
  /** Upper bound on epochs (default 30). */
  epochs?: number;
  /** Epochs without a better validation loss before stopping (default 4). */
  patience?: number;
  /**
   * The step, relative (default 0.05): each parameter group's Adam step size
   * is set so that one step moves C1's pre-activations, the logit and the
   * biases by about this fraction of their size at the start. A fixed
   * absolute step cannot serve both a 32-wide synthetic set and 3840-wide
   * ResNet vectors, whose pre-activations are ~1e-3 with ||x||₁ ~100: there
   * Adam's ±lr on every weight at lr 1e-4 moves them 10x their size and
   * kills every unit in the first epoch.
   */
  learningRate?: number;
  /** Dropout on C1's output while training, as the reference (default 0.5). */
  dropout?: number;
  seed?: number;
  backend?: TfBackend;
  onProgress?: (p: TrainProgress) => void;
}

export const DEFAULT_TRAIN_OPTIONS = { subjectsPerStep: 32, samplesPerSubject: 4, epochs: 30, patience: 4, learningRate: 0.05, dropout: 0.5, seed: 1, backend: 'wasm' as TfBackend } as const;

export interface TrainProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  /** Mean training loss of the epoch so far. */
  loss: number;
  /** Set at the end of an epoch. */
  validation?: { loss: number; accuracy: number };
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  validation: { loss: number; accuracy: number };
}

export interface TrainResult {
  head: Head;
  /** Validation of the starting head (epoch 0) and after every epoch. */
  history: EpochRecord[];
  bestEpoch: number;
  stoppedEarly: boolean;
  ms: number;
  backend: string;
}

/** Fixed, balanced validation pairs: every positive pair (capped) and as many seeded negatives. */
function validationPairs(set: LabelledSet, rng: Rng, cap = 20_000): { i: Int32Array; j: Int32Array; y: Float32Array } {
  const bySubject = new Map<string, number[]>();
  set.subjects.forEach((s, k) => bySubject.set(s, [...(bySubject.get(s) ?? []), k]));
  const pos: [number, number][] = [];
  for (const idx of bySubject.values()) for (const a of idx) for (const b of idx) if (a !== b) pos.push([a, b]);
  rng.shuffle(pos);
  pos.length = Math.min(pos.length, cap / 2);
  if (pos.length === 0 || bySubject.size < 2) throw new TrainingDataError(`the validation split has ${bySubject.size} subject(s) and ${pos.length} positive pairs; it needs 2 subjects and a subject with 2 samples`);
  const neg: [number, number][] = [];
  while (neg.length < pos.length) {
    const a = rng.int(set.count);
    const b = rng.int(set.count);
    if (set.subjects[a] !== set.subjects[b]) neg.push([a, b]);
  }
  const all = [...pos, ...neg];
  return { i: Int32Array.from(all, (p) => p[0]), j: Int32Array.from(all, (p) => p[1]), y: Float32Array.from(all, (_, k) => (k < pos.length ? 1 : 0)) };
}

/**
 * Trains the conv Siamese head (C1: H kernels over [q; g], ReLU, dropout,
 * C2, sigmoid; binary cross-entropy; Adam), starting from `init` (the
 * profile's metric head, say).
 *
 * It trains in the factorized form: C1·[q; g] = A·q + B·g + b1, so a step
 * projects each of its m samples once (2 products of m x D by D x H) and
 * then scores any of the m² pairs at O(H) each: the same identity the
 * shards' scan runs on, which makes hard-negative mining over the whole
 * step nearly free. Each step takes S subjects x K samples, every positive
 * pair among them, and as many negatives: half the hardest the current head
 * sees, half random (hardest alone lets a few outliers steer). The
 * exported head is the plain conv form: W1 = [Aᵀ Bᵀ].
 */
export class HeadTrainer {
  private readonly o: Required<Omit<TrainOptions, 'onProgress'>> & Pick<TrainOptions, 'onProgress'>;

  constructor(options: TrainOptions = {}) {
    this.o = withDefaults(DEFAULT_TRAIN_OPTIONS, options) as typeof this.o;
    const o = this.o;
    for (const [k, v] of [['subjectsPerStep', o.subjectsPerStep], ['samplesPerSubject', o.samplesPerSubject], ['epochs', o.epochs], ['patience', o.patience]] as const) {
      if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
    if (o.samplesPerSubject < 2) throw new RangeError('samplesPerSubject must be >= 2 (a step needs positive pairs)');
    if (!(o.learningRate > 0)) throw new RangeError(`learningRate must be > 0, got ${o.learningRate}`);
    if (!(o.dropout >= 0 && o.dropout < 1)) throw new RangeError(`dropout must be in [0, 1), got ${o.dropout}`);
  }

  /** The sizes the relative step is taken of, from 512 random pairs of the training set under the starting head. */
  private measureScales(tf: typeof TF, set: LabelledSet, A: TF.Variable, B: TF.Variable, b1: TF.Variable, w2: TF.Variable, b2: TF.Variable, rng: Rng): { preActivation: number; inputL1: number; w2: number; logit: number } {
    const n = Math.min(512, set.count);
    const pick = Array.from({ length: n }, () => rng.int(set.count));
    const x = new Float32Array(n * set.dim);
    pick.forEach((r, k) => x.set(set.vector(r), k * set.dim));
    return tf.tidy(() => {
      const X = tf.tensor2d(x, [n, set.dim]);
      // Each sample against the next one drawn: mostly impostor pairs, a few genuine.
      const rolled = new Float32Array(x.length);
      rolled.set(x.subarray(set.dim));
      rolled.set(x.subarray(0, set.dim), x.length - set.dim);
      const shuffled = tf.tensor2d(rolled, [n, set.dim]);
      const pre = tf.add(tf.add(tf.matMul(X, A), tf.matMul(shuffled, B)), b1);
      const z = tf.add(tf.matMul(tf.relu(pre), w2), b2);
      const rms = (t: TF.Tensor) => Math.sqrt(tf.mean(tf.square(t)).dataSync()[0]);
      const tiny = 1e-12;
      return {
        preActivation: Math.max(tiny, tf.mean(tf.abs(pre)).dataSync()[0]),
        inputL1: Math.max(tiny, tf.mean(tf.sum(tf.abs(X), 1)).dataSync()[0]),
        w2: Math.max(tiny, rms(w2)),
        logit: Math.max(1, rms(z)),
      };
    });
  }

  async train(init: Head, train: LabelledSet, validation: LabelledSet): Promise<TrainResult> {
    const started = performance.now();
    const o = this.o;
    const D = init.dim;
    const H = init.hidden;
    if (train.dim !== D || validation.dim !== D) throw new TrainingDataError(`the head takes vectors of ${D}; the data's are ${train.dim}`);
    const bySubject = new Map<string, number[]>();
    train.subjects.forEach((s, k) => bySubject.set(s, [...(bySubject.get(s) ?? []), k]));
    const withPairs = [...bySubject.values()].filter((v) => v.length >= 2).length;
    if (bySubject.size < 2 || withPairs === 0) throw new TrainingDataError(`the training split has ${bySubject.size} subject(s), ${withPairs} with 2+ samples; it needs 2 subjects and one with 2 samples`);
    const tf = await tfReady(o.backend);
    const rng = new Rng(o.seed);
    const valPairs = validationPairs(validation, new Rng(o.seed + 1));

    // A, B: D x H (column h is kernel h's half); from W1, which is H x 2D.
    const a0 = new Float32Array(D * H);
    const bm0 = new Float32Array(D * H);
    for (let h = 0; h < H; h++) {
      for (let c = 0; c < D; c++) {
        a0[c * H + h] = init.w1[h * 2 * D + c];
        bm0[c * H + h] = init.w1[h * 2 * D + D + c];
      }
    }
    const A = tf.variable(tf.tensor2d(a0, [D, H]), true, 'A');
    const B = tf.variable(tf.tensor2d(bm0, [D, H]), true, 'B');
    const b1 = tf.variable(tf.tensor1d(init.b1), true, 'b1');
    const w2 = tf.variable(tf.tensor2d(init.w2, [H, 1]), true, 'w2');
    const b2 = tf.variable(tf.scalar(init.b2), true, 'b2');
    const vars = [A, B, b1, w2, b2];
    const scales = this.measureScales(tf, train, A, B, b1, w2, b2, rng);
    const rho = o.learningRate;
    // One Adam per group: A and B step by rho·sH/‖x‖₁ (a step of every weight moves a unit by
    // about that), b1 by rho·sH, w2 by rho·rms(w2), b2 by rho·(logit scale).
    const groups: [TF.Variable[], number][] = [
      [[A, B], (rho * scales.preActivation) / scales.inputL1],
      [[b1], rho * scales.preActivation],
      [[w2], rho * scales.w2],
      [[b2], rho * scales.logit],
    ];
    const optimizers = groups.map(([, lr]) => tf.train.adam(lr));
    const snapshot = () => vars.map((v) => v.dataSync().slice() as Float32Array);
    const bce = (z: TF.Tensor, y: TF.Tensor) => tf.mean(tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z))))));

    const evaluate = (): { loss: number; accuracy: number } =>
      tf.tidy(() => {
        const X = tf.tensor2d(validation.vectors, [validation.count, D]);
        const U = tf.matMul(X, A);
        const P = tf.add(tf.matMul(X, B), b1);
        const z = tf.reshape(tf.add(tf.matMul(tf.relu(tf.add(tf.gather(U, tf.tensor1d(valPairs.i, 'int32')), tf.gather(P, tf.tensor1d(valPairs.j, 'int32')))), w2), b2), [-1]);
        const y = tf.tensor1d(valPairs.y);
        const loss = bce(z, y).dataSync()[0];
        const zs = z.dataSync();
        let okPos = 0;
        let okNeg = 0;
        let nPos = 0;
        for (let k = 0; k < zs.length; k++) {
          if (valPairs.y[k] === 1) {
            nPos++;
            if (zs[k] >= 0) okPos++;
          } else if (zs[k] < 0) okNeg++;
        }
        // Balanced accuracy at score 0.5 (logit 0): the head's own decision.
        return { loss, accuracy: (okPos / nPos + okNeg / (zs.length - nPos)) / 2 };
      });

    const subjects = [...bySubject.keys()];
    const steps = Math.ceil(subjects.length / o.subjectsPerStep);
    const history: EpochRecord[] = [{ epoch: 0, loss: NaN, validation: evaluate() }];
    let best = { loss: history[0].validation.loss, epoch: 0, weights: snapshot() };
    let stoppedEarly = false;
    try {
      for (let epoch = 1; epoch <= o.epochs; epoch++) {
        rng.shuffle(subjects);
        let lossSum = 0;
        for (let step = 0; step < steps; step++) {
          const group = subjects.slice(step * o.subjectsPerStep, (step + 1) * o.subjectsPerStep);
          // Too few subjects left for negatives: fill the group from the others.
          while (group.length < Math.min(2, subjects.length)) group.push(subjects[rng.int(subjects.length)]);
          const rows: number[] = [];
          const owner: number[] = [];
          group.forEach((s, g) => {
            const idx = bySubject.get(s)!;
            const pick = idx.length <= o.samplesPerSubject ? idx : Array.from({ length: o.samplesPerSubject }, () => idx[rng.int(idx.length)]);
            for (const r of new Set(pick)) {
              rows.push(r);
              owner.push(g);
            }
          });
          const m = rows.length;
          const x = new Float32Array(m * D);
          rows.forEach((r, k) => x.set(train.vector(r), k * D));
          const X = tf.tensor2d(x, [m, D]);
          // Mining: every pair's logit under the current head, no gradient.
          const all = tf.tidy(() => {
            const U = tf.matMul(X, A);
            const P = tf.add(tf.matMul(X, B), b1);
            const h = tf.relu(tf.add(tf.reshape(U, [m, 1, H]), tf.reshape(P, [1, m, H])));
            return tf.reshape(tf.matMul(tf.reshape(h, [m * m, H]), w2), [m, m]).dataSync();
          });
          const I: number[] = [];
          const J: number[] = [];
          const Y: number[] = [];
          for (let p = 0; p < m; p++) {
            const negs: number[] = [];
            let positives = 0;
            for (let q = 0; q < m; q++) {
              if (q === p) continue;
              if (owner[q] === owner[p]) {
                I.push(p);
                J.push(q);
                Y.push(1);
                positives++;
              } else negs.push(q);
            }
            if (negs.length === 0) continue;
            negs.sort((u, v) => all[p * m + v] - all[p * m + u]);
            const want = Math.max(1, positives);
            const hard = Math.ceil(want / 2);
            for (let k = 0; k < want; k++) {
              I.push(p);
              J.push(k < hard ? negs[Math.min(k, negs.length - 1)] : negs[rng.int(negs.length)]);
              Y.push(0);
            }
          }
          // Pairs pick their rows by one-hot products, not gather: the wasm backend has no kernel
          // for gather's gradient (UnsortedSegmentSum), and [pairs x m] x [m x H] costs little.
          const oneHot = (idx: number[]) => {
            const a = new Float32Array(idx.length * m);
            idx.forEach((r, k) => (a[k * m + r] = 1));
            return tf.tensor2d(a, [idx.length, m]);
          };
          const iT = oneHot(I);
          const jT = oneHot(J);
          const yT = tf.tensor1d(Float32Array.from(Y));
          const { value: cost, grads } = tf.variableGrads(() => {
            const U = tf.matMul(X, A);
            const P = tf.add(tf.matMul(X, B), b1);
            const h = tf.relu(tf.add(tf.matMul(iT, U), tf.matMul(jT, P)));
            const dropped = o.dropout > 0 ? tf.dropout(h, o.dropout, undefined, rng.int(2 ** 31)) : h;
            const z = tf.reshape(tf.add(tf.matMul(dropped, w2), b2), [-1]);
            return bce(z, yT) as TF.Scalar;
          }, vars);
          groups.forEach(([group], g) => optimizers[g].applyGradients(group.map((v) => ({ name: v.name, tensor: grads[v.name] }))));
          lossSum += cost.dataSync()[0];
          tf.dispose([cost, X, iT, jT, yT, ...Object.values(grads)]);
          o.onProgress?.({ epoch, epochs: o.epochs, step: step + 1, steps, loss: lossSum / (step + 1) });
        }
        const validation = evaluate();
        history.push({ epoch, loss: lossSum / steps, validation });
        o.onProgress?.({ epoch, epochs: o.epochs, step: steps, steps, loss: lossSum / steps, validation });
        if (validation.loss < best.loss - 1e-6) best = { loss: validation.loss, epoch, weights: snapshot() };
        else if (epoch - best.epoch >= o.patience) {
          stoppedEarly = true;
          break;
        }
      }
    } finally {
      for (const opt of optimizers) opt.dispose();
      tf.dispose(vars);
    }
    const [a, bm, bias1, out2, bias2] = best.weights;
    const w1 = new Float32Array(H * 2 * D);
    for (let h = 0; h < H; h++) {
      for (let c = 0; c < D; c++) {
        w1[h * 2 * D + c] = a[c * H + h];
        w1[h * 2 * D + D + c] = bm[c * H + h];
      }
    }
    const head = parseHead(headToOnnx({ dim: D, hidden: H, w1, b1: bias1, w2: out2, b2: bias2[0] }, { form: 'conv', sigmoid: true }));
    return { head, history, bestEpoch: best.epoch, stoppedEarly, ms: performance.now() - started, backend: tf.getBackend() };
  }
}
