import type * as grpc from '@grpc/grpc-js';
import { unary, type UnaryOptions } from '@yoco/rpc';

/**
 * A unary call by method name, outside the typed contract: for tests that
 * send what the contract does not allow (garbage, wrong types) or call
 * services that are not ours (grpc.health.v1). Typed code uses `unary`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function rawUnary<Res = any>(client: grpc.Client, method: string, request: unknown, options: UnaryOptions = {}): Promise<Res> {
  return unary(client as never, method as never, request as never, options) as Promise<Res>;
}
