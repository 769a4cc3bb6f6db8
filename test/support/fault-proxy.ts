import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback for fault injection: it forwards to one port, can be
 * pointed at another (every open connection is cut, as a failover cuts them),
 * or closed (connections are accepted and dropped at once) while a test sets
 * up what the client will find when it comes back.
 */
export class FaultProxy {
  private target: number | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(target: number): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = createServer((client) => proxy!.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    proxy = new FaultProxy(server, (server.address() as { port: number }).port);
    proxy.target = target;
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Forwards new connections to `target` (undefined: drops them); cuts every open one. */
  point(target: number | undefined): void {
    this.target = target;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.point(undefined);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.target === undefined) {
      client.destroy();
      return;
    }
    const upstream = connect(this.target, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
