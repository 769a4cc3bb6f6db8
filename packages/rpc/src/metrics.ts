import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry } from 'prom-client';

export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One registry per process (no default Node metrics: they trip promtool's naming lint), plus the RPC series every service has. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'code'>;
  readonly latency: Histogram<'method' | 'code'>;

  constructor(readonly service: string) {
    this.registry.setDefaultLabels({ service });
    this.requests = new Counter({
      name: 'yoco_rpc_requests_total',
      help: 'gRPC requests served, by method and status code',
      labelNames: ['method', 'code'],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: 'yoco_rpc_duration_seconds',
      help: 'gRPC request latency, by method and status code',
      labelNames: ['method', 'code'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
  }

  observe(method: string, code: string, seconds: number): void {
    this.requests.inc({ method, code });
    this.latency.observe({ method, code }, seconds);
  }

  /** Serves GET /metrics on host:port (port 0 picks a free port); resolves with the bound port. */
  async serve(host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
    const server: Server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address();
    return {
      port: typeof addr === 'object' && addr ? addr.port : port,
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }
}
