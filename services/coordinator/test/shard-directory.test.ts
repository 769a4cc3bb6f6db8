import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardDirectory } from '@yoco/coordinator';
import { createLogger, loadProtos, RpcServer, ServiceMetrics } from '@yoco/rpc';
import { afterEach, describe, expect, it } from 'vitest';

const logger = createLogger('directory-test', 'silent');
const open: (RpcServer | ShardDirectory)[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    if (o instanceof ShardDirectory) o.stop();
    else await o.shutdown(500);
  }
});

/** A shard that only answers Status, saying what the test wants it to say. */
async function fakeShard(status: Record<string, unknown>): Promise<string> {
  const server = new RpcServer({
    address: '127.0.0.1:0',
    logger,
    metrics: new ServiceMetrics('fake-shard'),
    services: [{ name: 'yoco.v1.Shard', definition: loadProtos().Shard.service, handlers: { Status: async () => ({ count: 1, dim: 8, headId: 'h1', modelId: 'm', engine: 'factorized', state: 'SERVING', ...status }) }, multiplexed: {} }],
  });
  await server.start();
  open.push(server);
  return `127.0.0.1:${server.port}`;
}

describe('ShardDirectory', () => {
  it('asks the fresher of two healthy replicas first, whichever turn it is', async () => {
    const stale = await fakeShard({ index: 0, stalenessMs: 9000 });
    const fresh = await fakeShard({ index: 0, stalenessMs: 40 });
    const directory = new ShardDirectory({ addresses: [stale, fresh], dns: '', refreshMs: 60_000, logger });
    open.push(directory);
    await directory.start();
    for (let turn = 0; turn < 4; turn++) expect(directory.candidates(0).map((r) => r.address)).toEqual([fresh, stale]);
  });

  it("k comes from SERVING replicas of the cluster's head; the others are excluded, with the reason", async () => {
    const a = await fakeShard({ index: 0, count: 2 });
    const b = await fakeShard({ index: 1, count: 2 });
    const loading = [0, 1, 2].map((index) => fakeShard({ index, count: 3, state: 'LOADING' }));
    const other = await fakeShard({ index: 0, count: 2, headId: 'h2' });
    const directory = new ShardDirectory({ addresses: [a, b, ...(await Promise.all(loading)), other], dns: '', refreshMs: 60_000, logger, clusterHead: async () => 'h1' });
    open.push(directory);
    await directory.start();
    expect(directory.count).toBe(2);
    expect(directory.candidates(0).map((r) => r.address)).toEqual([a]);
    const byAddress = new Map(directory.all().map((r) => [r.address, directory.excluded(r)]));
    expect(byAddress.get(a)).toBe('');
    expect(byAddress.get(other)).toBe("runs head h2, not the cluster's head h1");
    expect([...byAddress.values()].filter((e) => e.startsWith('reports k=3'))).toHaveLength(3);
  });

  it('an address file caught empty (mid-write) keeps the replicas it had; one that names others replaces them', async () => {
    const a = await fakeShard({ index: 0 });
    const b = await fakeShard({ index: 0 });
    const file = join(mkdtempSync(join(tmpdir(), 'yoco-dir-')), 'shard-addresses');
    writeFileSync(file, `${a}\n`);
    const directory = new ShardDirectory({ addresses: [], addressesFile: file, dns: '', refreshMs: 60_000, logger });
    open.push(directory);
    await directory.start();
    expect(directory.dim).toBe(8);
    writeFileSync(file, '');
    await directory.refresh();
    expect(directory.all().map((r) => r.address)).toEqual([a]);
    expect(directory.dim).toBe(8);
    writeFileSync(file, `${b}\n`);
    await directory.refresh();
    expect(directory.all().map((r) => r.address)).toEqual([b]);
  });
});
