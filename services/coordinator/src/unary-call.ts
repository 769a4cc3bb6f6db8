import type * as grpc from '@grpc/grpc-js';
import { deadlineFrom } from '@yoco/common';

export type Call = grpc.ServerUnaryCall<unknown, unknown>;

/** Kept back from the caller's deadline so a partial answer still reaches it in time. */
export const DEADLINE_MARGIN_MS = 20;

/** A call's deadline (a unary call's, or a streamed call's callerDeadline), the deployment's default when it set none, less the margin. */
export function callDeadline(deadline: Date | number | undefined, fallbackMs: number): number {
  return deadlineFrom(deadline, fallbackMs) - DEADLINE_MARGIN_MS;
}

/** Aborted when a unary call's caller cancels it (hedges and shard calls stop with it). */
export function cancelSignal(call: Call): AbortSignal {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort());
  return controller.signal;
}
