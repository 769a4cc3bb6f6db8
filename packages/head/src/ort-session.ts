import { InferenceSession } from 'onnxruntime-node';

export interface RuntimeOptions {
  /** ORT intra-op threads; 0 lets ORT pick (one per core). */
  threads?: number;
  /** ORT execution providers in order of preference, e.g. ['cuda', 'cpu']. CPU is always appended. */
  executionProviders?: string[];
}

export async function createSession(bytes: Uint8Array, options: RuntimeOptions = {}): Promise<InferenceSession> {
  const providers = [...(options.executionProviders ?? []).filter((p) => p !== 'cpu'), 'cpu'];
  return InferenceSession.create(bytes, {
    intraOpNumThreads: options.threads ?? 0,
    interOpNumThreads: 1,
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    // ORT's pool threads spin after each run by default; they would then fight
    // the scan's helper threads (and the event loop) for the same cores.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
}
