export { startTracing, stopTracing, traceparentOf, contextFrom, inSpan, spanContext, type TracingOptions } from './tracing.js';
