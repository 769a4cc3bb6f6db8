import * as grpc from '@grpc/grpc-js';
import { ConfigError, ResourceExhaustedError } from '@yoco/common';
import { toServiceError } from '@yoco/rpc';
import { Counter, type Registry } from 'prom-client';
import { callerOf, type Caller, type Role } from './caller-auth.js';

/** One role's allowance per caller: calls per second (with a burst of as many), and calls in flight at once. */
export interface Allowance {
  ratePerSecond: number;
  inflight: number;
}

export type CallerLimits = Partial<Record<Role, Allowance>>;

/** `identify=200/64,enrol=50/16,admin=20/8`: per role, calls per second / calls in flight. */
export function parseCallerLimits(raw: string): CallerLimits {
  const out: CallerLimits = {};
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(identify|enrol|admin)=(\d+(?:\.\d+)?)\/(\d+)$/.exec(part);
    if (!m || Number(m[2]) <= 0 || Number(m[3]) < 1) throw new ConfigError('CALLER_LIMITS', `'${part}' is not role=rate/inflight (e.g. identify=200/64)`);
    out[m[1] as Role] = { ratePerSecond: Number(m[2]), inflight: Number(m[3]) };
  }
  return out;
}

interface Bucket {
  tokens: number;
  at: number;
  inflight: number;
}

/** A caller's allowance: the most generous of its roles'. */
function allowanceOf(limits: CallerLimits, caller: Caller): Allowance | undefined {
  const own = caller.roles.map((r) => limits[r]).filter((a): a is Allowance => a !== undefined);
  if (own.length === 0) return undefined;
  return { ratePerSecond: Math.max(...own.map((a) => a.ratePerSecond)), inflight: Math.max(...own.map((a) => a.inflight)) };
}

/**
 * Per-caller limits (the token's `sub`), in this coordinator process: a
 * token bucket of calls per second and a bound on calls in flight, by role.
 * Over either: RESOURCE_EXHAUSTED, and no other caller waits for it. An
 * IdentifyStream counts as one call in flight and each call on it takes a
 * token: when the bucket is empty the stream's next call is held back until
 * one is there (up to a second, else the stream ends RESOURCE_EXHAUSTED).
 * Callers are known only with authentication on; without it nothing is limited.
 */
export class CallerLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly denied: Counter<'caller' | 'reason'>;
  private readonly calls: Counter<'caller'>;

  constructor(
    private readonly limits: CallerLimits,
    registry: Registry,
    private readonly onDenied: (caller: string, method: string, detail: string) => void = () => {},
  ) {
    this.denied = new Counter({ name: 'yoco_coordinator_caller_denied_total', help: 'calls refused by the per-caller limits, by caller (token sub) and reason', labelNames: ['caller', 'reason'], registers: [registry] });
    this.calls = new Counter({ name: 'yoco_coordinator_caller_calls_total', help: 'calls admitted, by caller (token sub)', labelNames: ['caller'], registers: [registry] });
  }

  /** Milliseconds until `caller` has a token (0: it took one now). */
  private take(bucket: Bucket, a: Allowance): number {
    const now = Date.now();
    bucket.tokens = Math.min(a.ratePerSecond, bucket.tokens + ((now - bucket.at) / 1000) * a.ratePerSecond);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / a.ratePerSecond) * 1000);
  }

  private bucket(sub: string, a: Allowance): Bucket {
    let b = this.buckets.get(sub);
    if (!b) {
      b = { tokens: a.ratePerSecond, at: Date.now(), inflight: 0 };
      this.buckets.set(sub, b);
    }
    return b;
  }

  interceptor(): grpc.ServerInterceptor {
    return (method, call) => {
      let release: (() => void) | undefined;
      let streamBucket: { b: Bucket; a: Allowance; sub: string } | undefined;
      const refuse = (sub: string, reason: string, message: string) => {
        this.denied.inc({ caller: sub, reason });
        this.onDenied(sub, method.path.split('/').pop() ?? method.path, message);
        const e = toServiceError(new ResourceExhaustedError(message, 'CALLER_LIMIT'));
        call.sendStatus({ code: e.code ?? grpc.status.RESOURCE_EXHAUSTED, details: e.details ?? message, metadata: e.metadata ?? new grpc.Metadata() });
      };
      const listener = new grpc.ServerListenerBuilder()
        .withOnReceiveMetadata((metadata, next) => {
          const caller = callerOf(metadata);
          const a = caller && allowanceOf(this.limits, caller);
          if (!caller || !a) return next(metadata);
          const b = this.bucket(caller.sub, a);
          if (b.inflight >= a.inflight) return refuse(caller.sub, 'inflight', `caller '${caller.sub}' has ${b.inflight} calls in flight (its limit is ${a.inflight}): wait for replies`);
          if (!method.requestStream && this.take(b, a) > 0) return refuse(caller.sub, 'rate', `caller '${caller.sub}' is over its ${a.ratePerSecond} calls per second: retry shortly`);
          b.inflight++;
          let released = false;
          release = () => {
            if (released) return;
            released = true;
            b.inflight--;
          };
          if (method.requestStream) streamBucket = { b, a, sub: caller.sub };
          this.calls.inc({ caller: caller.sub });
          next(metadata);
        })
        .withOnReceiveMessage((message, next) => {
          const s = streamBucket;
          if (!s) return next(message);
          const wait = this.take(s.b, s.a);
          if (wait === 0) return next(message);
          if (wait > 1000) return refuse(s.sub, 'rate', `caller '${s.sub}' is over its ${s.a.ratePerSecond} calls per second on a stream: retry shortly`);
          this.denied.inc({ caller: s.sub, reason: 'paced' });
          setTimeout(() => next(message), wait);
        })
        .withOnCancel(() => release?.())
        .build();
      const responder = new grpc.ResponderBuilder()
        .withStart((next) => next(listener))
        .withSendStatus((status, next) => {
          release?.();
          next(status);
        })
        .build();
      return new grpc.ServerInterceptingCall(call, responder);
    };
  }
}
