import { parse, type EnvSpec } from '@yoco/common';
import { DEFAULT_METRIC_HEAD, loadHead, metricHead, parseHead, type Head } from '@yoco/head';

/** Which head a process runs: a file, or the seeded metric head. Every service of a cluster must agree. */
export interface HeadConfig {
  headPath: string;
  dim: number;
  hidden: number;
  seed: number;
  tau: number;
  alpha: number;
}

export const HEAD_ENV: EnvSpec<HeadConfig> = {
  headPath: { name: 'YOCO_HEAD_PATH', default: '', parse: parse.string, doc: 'ONNX head file; empty = the metric head below' },
  dim: { name: 'YOCO_DIM', default: DEFAULT_METRIC_HEAD.dim, parse: parse.int(1, 65536), doc: 'vector width D of the metric head' },
  hidden: { name: 'YOCO_HIDDEN', default: DEFAULT_METRIC_HEAD.hidden, parse: parse.int(2, 65536), doc: 'hidden units H of the metric head (even)' },
  seed: { name: 'YOCO_HEAD_SEED', default: DEFAULT_METRIC_HEAD.seed, parse: parse.int(0, 2 ** 32 - 1), doc: 'seed of the metric head projection' },
  tau: { name: 'YOCO_HEAD_TAU', default: DEFAULT_METRIC_HEAD.tau, parse: parse.number(1e-9, 1e9), doc: 'distance at which the metric head scores 0.5' },
  alpha: { name: 'YOCO_HEAD_ALPHA', default: DEFAULT_METRIC_HEAD.alpha, parse: parse.number(1e-9, 1e9), doc: 'steepness of the metric head' },
};

export async function resolveHead(config: HeadConfig): Promise<Head> {
  if (config.headPath) return loadHead(config.headPath);
  return metricHead({ dim: config.dim, hidden: config.hidden, seed: config.seed, tau: config.tau, alpha: config.alpha });
}

/** A head from its ONNX bytes (a rollout's upload), checked as loadHead checks a file. */
export function headFromBytes(bytes: Uint8Array): Head {
  return parseHead(bytes);
}
