import * as grpc from '@grpc/grpc-js';
import { toServiceError } from './status.js';

/** What a gate sees of a call before any message of it is read. */
export interface GateCall {
  /** Fully qualified: /yoco.v1.Matcher/Identify. */
  path: string;
  metadata: grpc.Metadata;
  /** The caller's address (ipv4:1.2.3.4:5678). */
  peer: string;
  peerCertificateNames(): string[];
}

/**
 * Decides whether a call may run: resolves with the metadata to go on with
 * (it may add what it learnt, e.g. the caller), or rejects with an error of
 * a status class (PermissionDeniedError, UnauthenticatedError, ...), which is
 * what the caller gets; no handler runs.
 */
export type Gate = (call: GateCall) => Promise<grpc.Metadata>;

/**
 * A gate as a grpc-js server interceptor: it runs on the call's metadata, for
 * unary and streaming methods alike, before the handler sees any message.
 */
export function gateInterceptor(gate: Gate, onDenied?: (path: string, code: number) => void, names: (call: grpc.ServerInterceptingCallInterface) => string[] = () => []): grpc.ServerInterceptor {
  return (method, call) => {
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        gate({ path: method.path, metadata, peer: call.getPeer(), peerCertificateNames: () => names(call) }).then(next, (err: unknown) => {
          const e = toServiceError(err);
          const code = e.code ?? grpc.status.INTERNAL;
          onDenied?.(method.path, code);
          call.sendStatus({ code, details: e.details ?? 'refused', metadata: e.metadata ?? new grpc.Metadata() });
        });
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
