import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface TracingOptions {
  /** The service's name on its spans (service.name). */
  service: string;
  /** The OTLP/HTTP collector (e.g. http://otel-collector:4318); tracing is off without one. */
  endpoint: string;
  /** How long finished spans wait to be sent together (ms). */
  flushMs?: number;
}

let provider: BasicTracerProvider | undefined;
const propagator = new W3CTraceContextPropagator();

/**
 * Turns tracing on for this process: spans go to `${endpoint}/v1/traces`
 * over OTLP/HTTP in batches. Without an endpoint nothing is recorded (the
 * API's no-op tracer: a span costs next to nothing).
 */
export function startTracing(options: TracingOptions): void {
  if (!options.endpoint || provider) return;
  const exporter = new OTLPTraceExporter({ url: `${options.endpoint.replace(/\/$/, '')}/v1/traces` });
  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `yoco-${options.service}` }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: options.flushMs ?? 5000 })],
  });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(propagator);
}

/** Sends what is pending and stops (at shutdown). */
export async function stopTracing(): Promise<void> {
  await provider?.shutdown();
  provider = undefined;
}

function tracer(): Tracer {
  return trace.getTracer('yoco');
}

/** The W3C traceparent of a span, for the next hop (a field of a message, or gRPC metadata). */
export function traceparentOf(span: Span): string {
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpan(context.active(), span), carrier, { set: (c, k, v) => (c[k] = v) });
  return carrier.traceparent ?? '';
}

/** The context a traceparent names (the root context when it is empty or malformed). */
export function contextFrom(traceparent: string | undefined): Context {
  if (!traceparent) return context.active();
  return propagator.extract(context.active(), { traceparent }, { get: (c, k) => c[k as keyof typeof c], keys: (c) => Object.keys(c) });
}

/**
 * Runs `fn` in a span named `name`, child of `parent` (a context), ended when
 * `fn` settles, marked as an error when it throws. `fn` gets the span (for
 * attributes, and to pass its traceparent on).
 */
export async function inSpan<T>(name: string, parent: Context, kind: 'server' | 'client' | 'internal', fn: (span: Span) => Promise<T>): Promise<T> {
  const span = tracer().startSpan(name, { kind: kind === 'server' ? SpanKind.SERVER : kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/** The context of the span `fn` runs in, for spans below it. */
export function spanContext(span: Span): Context {
  return trace.setSpan(context.active(), span);
}
