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

/**
 * Compiled sessions shared by a scorer and the scorers made from it (fresh()
 * and compact()): they hold only the head's weights, so every copy of a
 * gallery can run on the same ones. Released when the last holder lets go.
 */
export class SharedSessions<S extends Record<string, InferenceSession>> {
  private holders = 1;

  constructor(readonly sessions: S) {}

  retain(): this {
    if (this.holders === 0) throw new Error('the sessions were already released');
    this.holders++;
    return this;
  }

  async release(): Promise<void> {
    if (--this.holders > 0) return;
    await Promise.all(Object.values(this.sessions).map((s) => s.release()));
  }
}
