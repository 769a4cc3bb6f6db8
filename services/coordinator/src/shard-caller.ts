import type * as grpc from '@grpc/grpc-js';
import { CancelledError, DeadlineError, getErrorMessage } from '@yoco/common';
import { isServiceError, Status } from '@yoco/rpc';
import { Counter, Histogram, type Registry } from 'prom-client';
import { ShardUnavailableError } from './errors/index.js';
import type { Replica, Route, ShardDirectory } from './shard-directory.js';

/** Codes after which another replica may well succeed (FAILED_PRECONDITION: the replica is not the shard index asked for, or not the cluster's head). */
const RETRYABLE = new Set<number>([
  Status.UNAVAILABLE,
  Status.INTERNAL,
  Status.UNKNOWN,
  Status.CANCELLED,
  Status.RESOURCE_EXHAUSTED,
  Status.ABORTED,
  Status.FAILED_PRECONDITION,
]);

export interface CallOptions<Res> {
  deadline: number;
  /** ms before a second replica is asked too; undefined = no hedging. */
  hedgeAfterMs: number | undefined;
  /** Aborting cancels every replica call (they are cancelled on the shards too) and rejects with CANCELLED. */
  signal?: AbortSignal;
  /**
   * Says why an answer must not be used ('' or undefined when it may): from
   * another shard index than asked (a reused address), or too stale. Such an
   * answer counts as that replica failing, and the next one is asked.
   */
  reject?: (response: Res, replica: Replica) => string | undefined;
  /** The epoch the call is for (default: the one routed by now): only replicas ready for it are asked. */
  route?: Route;
}

/** Why a replica call is cancelled once another answered (or the call ended): one object for all. */
const SUPERSEDED = new CancelledError('another replica answered first, or the call ended');

/**
 * Calls one shard index: the best replica first; a hedge to the next one
 * after hedgeAfterMs if the first has not answered; failover at once on a
 * retryable error. The first success wins and the others are cancelled.
 */
export class ShardCaller {
  readonly hedges: Counter<'shard'>;
  readonly hedgesWon: Counter<'shard'>;
  readonly failovers: Counter<'shard'>;
  readonly latency: Histogram<'shard'>;

  constructor(private readonly directory: ShardDirectory, registry: Registry) {
    const registers = [registry];
    this.hedges = new Counter({ name: 'yoco_coordinator_hedges_total', help: 'hedged shard requests sent', labelNames: ['shard'], registers });
    this.hedgesWon = new Counter({ name: 'yoco_coordinator_hedges_won_total', help: 'hedged shard requests whose answer was the one used', labelNames: ['shard'], registers });
    this.failovers = new Counter({ name: 'yoco_coordinator_failovers_total', help: 'shard requests retried on another replica after an error', labelNames: ['shard'], registers });
    this.latency = new Histogram({
      name: 'yoco_coordinator_shard_duration_seconds',
      help: 'latency of the winning replica per shard index',
      labelNames: ['shard'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
  }

  /** `invoke` makes the call on one replica (Search over its stream, ScoreSubject unary, ...). */
  call<Res>(
    index: number,
    invoke: (replica: Replica, options: { deadline: number; signal: AbortSignal }) => Promise<Res>,
    options: CallOptions<Res>,
  ): Promise<{ response: Res; replica: Replica; hedged: boolean }> {
    const candidates = this.directory.candidates(index, options.route);
    const label = { shard: String(index) };
    if (options.signal?.aborted) return Promise.reject(new CancelledError('the caller cancelled the call'));
    if (candidates.length === 0) return Promise.reject(new ShardUnavailableError(index, []));
    return new Promise((resolve, reject) => {
      const controllers: AbortController[] = [];
      const answered = new Set<AbortController>();
      const reasons: string[] = [];
      const codes: number[] = [];
      let next = 0;
      let running = 0;
      let settled = false;
      let hedgeTimer: NodeJS.Timeout | undefined;
      const started = performance.now();

      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (hedgeTimer) clearTimeout(hedgeTimer);
        // Only calls still running are cancelled, with one shared reason: abort() without one builds a
        // DOMException and its stack each time (about 50 us of every Identify on this machine).
        for (const c of controllers) if (!c.signal.aborted && !answered.has(c)) c.abort(SUPERSEDED);
        fn();
      };

      const launch = (hedge: boolean): boolean => {
        if (next >= candidates.length || settled) return false;
        const replica = candidates[next++];
        const controller = new AbortController();
        controllers.push(controller);
        running++;
        replica.inflight++;
        if (hedge) this.hedges.inc(label);
        invoke(replica, { deadline: options.deadline, signal: controller.signal }).then(
          (response) => {
            answered.add(controller);
            const refusal = options.reject?.(response, replica);
            if (refusal) {
              failed(replica, Status.UNAVAILABLE, refusal, false);
              return;
            }
            replica.inflight--;
            this.directory.markOk(replica);
            const ms = performance.now() - started;
            this.directory.recordLatency(index, ms);
            this.latency.observe(label, ms / 1000);
            if (hedge && !settled) this.hedgesWon.inc(label);
            finish(() => resolve({ response, replica, hedged: hedge }));
          },
          (err: unknown) => {
            answered.add(controller);
            const code = isServiceError(err) ? err.code : Status.UNKNOWN;
            const detail = isServiceError(err) ? err.details : getErrorMessage(err);
            failed(replica, code, detail, true, err);
          },
        );
        return true;
      };

      const failed = (replica: Replica, code: number, detail: string, markUnavailable: boolean, err?: unknown) => {
        replica.inflight--;
        running--;
        if (settled) return;
        if (code === Status.DEADLINE_EXCEEDED || Date.now() >= options.deadline) {
          finish(() => reject(new DeadlineError(`shard ${index} did not answer before the deadline (${replica.address})`)));
          return;
        }
        if (!RETRYABLE.has(code)) {
          finish(() => reject(err as grpc.ServiceError));
          return;
        }
        if ((code === Status.UNAVAILABLE || code === Status.FAILED_PRECONDITION) && markUnavailable) this.directory.markFailed(replica, detail);
        reasons.push(`${replica.address}: ${detail}`);
        codes.push(code);
        if (launch(false)) this.failovers.inc(label);
        else if (running === 0) finish(() => reject(new ShardUnavailableError(index, reasons, codes)));
      };

      options.signal?.addEventListener('abort', () => finish(() => reject(new CancelledError('the caller cancelled the call'))), { once: true });

      launch(false);
      if (options.hedgeAfterMs !== undefined && candidates.length > 1) {
        hedgeTimer = setTimeout(() => launch(true), options.hedgeAfterMs);
      }
    });
  }
}
