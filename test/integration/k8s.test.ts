import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeLocalPki } from '@yoco/devkit';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'yoco-k8s-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

/** Secrets that prod expects the operator to create (never in git); cert-manager makes the yoco-tls-* ones. */
const EXTERNAL_SECRETS: Record<string, string[]> = { dev: [], prod: ['yoco-redis', 'yoco-redis-auth', 'yoco-auth', 'yoco-template-keys'] };

/** What the Secret yoco-redis holds: prod's is the redis-sentinel:// target its kustomization documents. */
const REDIS_URL_SECRET: Record<string, string> = {
  dev: 'redis://:a-password@yoco-redis:6379',
  prod: 'redis-sentinel://:a-password@redis-0.yoco-redis-headless:26379,redis-1.yoco-redis-headless:26379,redis-2.yoco-redis-headless:26379/yoco?sentinelPassword=a-password',
};

function render(overlay: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', join(ROOT, 'k8s/overlays', overlay)], { encoding: 'utf8' });
  expect(r.error, 'kubectl (with its kustomize) is needed').toBeUndefined();
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout).map((d) => d.toJS()).filter(Boolean);
}

const workloads = (objs: Obj[]) => objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const podsMatching = (objs: Obj[], selector: Record<string, string>) => workloads(objs).filter((w) => matches(selector, w.spec.template.metadata.labels));

async function validate(o: Obj): Promise<void> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  if (['cert-manager.io', 'monitoring.coreos.com'].includes(group)) {
    // Custom resources (cert-manager, the Prometheus Operator): their schemas are not in kubernetes-models.
    expect(o.metadata?.name).toBeTruthy();
    expect(o.spec).toBeTruthy();
    return;
  }
  const mod = await import(`kubernetes-models/${group ? `${group}/` : ''}${version}`);
  expect(mod[o.kind], `${o.apiVersion} ${o.kind}`).toBeDefined();
  new mod[o.kind](o).validate();
}

describe.each(['dev', 'prod'])('k8s/overlays/%s', (overlay) => {
  it('renders, and every object validates against the Kubernetes schemas', async () => {
    const objs = render(overlay);
    expect(objs.length).toBeGreaterThan(15);
    for (const o of objs) await validate(o);
  });

  it('holds together: selectors, services, ports, probes, ConfigMaps and Secrets all point at something that is there', () => {
    const objs = render(overlay);
    const byKind = (kind: string) => objs.filter((o) => o.kind === kind);
    const names = (kind: string) => new Set(byKind(kind).map((o) => o.metadata.name));
    const secrets = new Set([...names('Secret'), ...byKind('Certificate').map((c) => c.spec.secretName), ...EXTERNAL_SECRETS[overlay]]);
    const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata.name, c.data ?? {}]));
    for (const w of workloads(objs)) {
      const what = `${w.kind} ${w.metadata.name}`;
      expect(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${what}: selector`).toBe(true);
      if (w.kind === 'StatefulSet') expect(names('Service').has(w.spec.serviceName), `${what}: serviceName`).toBe(true);
      const pod = w.spec.template.spec;
      const volumes = new Map([...(pod.volumes ?? []), ...(w.spec.volumeClaimTemplates ?? []).map((t: Obj) => ({ name: t.metadata.name }))].map((v: Obj) => [v.name, v]));
      for (const v of pod.volumes ?? []) {
        if (v.secret) expect(secrets.has(v.secret.secretName), `${what}: secret ${v.secret.secretName}`).toBe(true);
        // An optional ConfigMap (the coordinators' yoco-threshold, created by an operator after calibrating) may be absent.
        if (v.configMap && !v.configMap.optional) expect(configMaps.has(v.configMap.name), `${what}: configMap ${v.configMap.name}`).toBe(true);
        if (v.persistentVolumeClaim) expect(names('PersistentVolumeClaim').has(v.persistentVolumeClaim.claimName), `${what}: claim ${v.persistentVolumeClaim.claimName}`).toBe(true);
      }
      for (const c of pod.containers) {
        const ports = new Set<string | number>(c.ports?.flatMap((p: Obj) => [p.containerPort, p.name]) ?? []);
        for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => c[p]).filter(Boolean)) {
          const port = probe.grpc?.port ?? probe.httpGet?.port ?? probe.tcpSocket?.port;
          if (port !== undefined) expect(ports.has(port), `${what}: probe port ${port}`).toBe(true);
        }
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${what}: mount ${m.name}`).toBe(true);
        for (const e of c.envFrom ?? []) if (e.configMapRef) expect(configMaps.has(e.configMapRef.name), `${what}: envFrom ${e.configMapRef.name}`).toBe(true);
        for (const e of c.env ?? []) {
          const cm = e.valueFrom?.configMapKeyRef;
          if (cm) expect(configMaps.get(cm.name)?.[cm.key], `${what}: ${e.name} from ${cm.name}/${cm.key}`).toBeDefined();
          const sk = e.valueFrom?.secretKeyRef;
          if (sk) expect(secrets.has(sk.name), `${what}: ${e.name} from secret ${sk.name}`).toBe(true);
        }
        // Non-root, read-only root filesystem, no privilege escalation.
        expect(pod.securityContext?.runAsNonRoot, `${what}: runAsNonRoot`).toBe(true);
        expect(c.securityContext?.readOnlyRootFilesystem, `${what}: read-only root`).toBe(true);
        expect(c.securityContext?.allowPrivilegeEscalation, `${what}: no escalation`).toBe(false);
        if (w.metadata.name !== 'redis') expect(c.image).toBe('ghcr.io/yoco/yoco:0.1.0');
      }
    }
    for (const s of byKind('Service')) {
      const pods = podsMatching(objs, s.spec.selector);
      expect(pods.length, `Service ${s.metadata.name} selects nothing`).toBeGreaterThan(0);
      for (const p of s.spec.ports) {
        const found = pods.some((w) => w.spec.template.spec.containers.some((c: Obj) => c.ports?.some((cp: Obj) => cp.name === p.targetPort || cp.containerPort === p.targetPort)));
        expect(found, `Service ${s.metadata.name}: targetPort ${p.targetPort}`).toBe(true);
      }
    }
    for (const pdb of byKind('PodDisruptionBudget')) expect(podsMatching(objs, pdb.spec.selector.matchLabels).length, `PDB ${pdb.metadata.name}`).toBeGreaterThan(0);
    for (const hpa of byKind('HorizontalPodAutoscaler')) expect(workloads(objs).some((w) => w.kind === hpa.spec.scaleTargetRef.kind && w.metadata.name === hpa.spec.scaleTargetRef.name), `HPA ${hpa.metadata.name}`).toBe(true);
    for (const np of byKind('NetworkPolicy')) {
      expect(podsMatching(objs, np.spec.podSelector.matchLabels).length, `NetworkPolicy ${np.metadata.name}`).toBeGreaterThan(0);
      for (const rule of np.spec.ingress ?? []) for (const from of rule.from ?? []) if (from.podSelector) expect(podsMatching(objs, from.podSelector.matchLabels).length, `NetworkPolicy ${np.metadata.name}: from`).toBeGreaterThan(0);
    }
    // Each replica group has one pod per shard index; shards are never throttled (requests = limits).
    const k = Number(configMaps.get('yoco-config')!.SHARD_COUNT);
    const groups = byKind('StatefulSet').filter((s) => s.metadata.name.startsWith('shards-'));
    expect(groups.map((g) => g.metadata.name).sort()).toEqual(['shards-a', 'shards-b']);
    for (const g of groups) {
      expect(g.spec.replicas).toBe(k);
      expect(g.spec.podManagementPolicy).toBe('Parallel');
      const r = g.spec.template.spec.containers[0].resources;
      expect(r.requests).toEqual(r.limits);
    }
  });

  it("every container's rendered environment passes its service's --check-config", () => {
    const objs = render(overlay);
    const configMaps = new Map(objs.filter((o) => o.kind === 'ConfigMap').map((c) => [c.metadata.name, c.data ?? {}]));
    // Stand-ins for mounted Secrets: real certificates, keys and a secret, at paths under tmp.
    const pki = makeLocalPki(join(tmp, `pki-${overlay}`));
    const files = join(tmp, `files-${overlay}`);
    for (const w of workloads(objs).filter((o) => o.metadata.name !== 'redis')) {
      const pod = w.spec.template.spec;
      const c = pod.containers[0];
      const service = c.args[0];
      const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
      for (const e of c.envFrom ?? []) Object.assign(env, configMaps.get(e.configMapRef.name));
      for (const e of c.env ?? []) {
        if (e.value !== undefined) env[e.name] = e.value;
        else if (e.valueFrom?.configMapKeyRef) env[e.name] = configMaps.get(e.valueFrom.configMapKeyRef.name)![e.valueFrom.configMapKeyRef.key];
        else if (e.valueFrom?.secretKeyRef) env[e.name] = REDIS_URL_SECRET[overlay];
      }
      // Mounted files: each mount path stands in a folder of its own, holding what the Secret would.
      for (const m of c.volumeMounts ?? []) {
        if (m.mountPath === '/tmp') continue;
        const dir = join(files, w.metadata.name, m.mountPath);
        mkdirSync(dir, { recursive: true });
        const cert = m.name === 'client-tls' ? pki.coordinator : pki.servers.shard;
        copyFileSync(cert.cert, join(dir, 'tls.crt'));
        copyFileSync(cert.key, join(dir, 'tls.key'));
        copyFileSync(pki.caFile, join(dir, 'ca.crt'));
        copyFileSync(pki.jwtSecretFile, join(dir, 'jwt-secret'));
        copyFileSync(pki.templateKeysFile, join(dir, 'template-keys.json'));
        for (const [k, v] of Object.entries(env)) if (v.startsWith(`${m.mountPath}/`)) env[k] = join(dir, v.slice(m.mountPath.length + 1));
      }
      // A StatefulSet pod's ordinal is its shard index (from the pod name, which the check does not have).
      if (service === 'shard') env.SHARD_INDEX = '0';
      if (service === 'embedder') env.MODELS_DIR = join(tmp, 'models');
      const r = spawnSync(process.execPath, [join(ROOT, 'services', service, 'dist/main.js'), '--check-config'], { env, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${w.metadata.name} (${service}): ${r.stderr}`).toBe(0);
      expect(r.stdout).not.toContain('a-password');
    }
  });
});

describe('k8s/components/redis-sentinel (the prod overlay\'s Redis)', () => {
  const dir = join(ROOT, 'k8s/components/redis-sentinel');
  /** Runs a start script as pod `pod` would, with fakes for hostname, redis-cli (a sentinel naming `named`, or none) and redis-server. */
  function start(script: string, pod: string, named: string, data: string): string {
    const bin = join(tmp, `bin-${pod}-${named || 'none'}`);
    const conf = join(tmp, `conf-${pod}-${named || 'none'}`);
    mkdirSync(bin, { recursive: true });
    mkdirSync(conf, { recursive: true });
    mkdirSync(data, { recursive: true });
    writeFileSync(join(tmp, 'password'), 'pw-1');
    writeFileSync(join(bin, 'hostname'), `#!/bin/sh\necho ${pod}\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'redis-cli'), named ? `#!/bin/sh\nprintf '${named}\\n6379\\n'\n` : '#!/bin/sh\necho "Could not connect" >&2\nexit 1\n', { mode: 0o755 });
    writeFileSync(join(bin, 'redis-server'), '#!/bin/sh\ncat "$1"\n', { mode: 0o755 });
    const r = spawnSync('sh', [join(dir, script)], { env: { PATH: `${bin}:/usr/bin:/bin`, AUTH_FILE: join(tmp, 'password'), CONF_DIR: conf, DATA_DIR: data }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  }

  it('three Redis pods, each with a sentinel; writes fsynced and refused without a replica; the services wait for one replica', () => {
    const objs = render('prod');
    const redis = objs.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'redis');
    expect(redis.spec.replicas).toBe(3);
    expect(redis.spec.template.spec.containers.map((c: Obj) => c.name)).toEqual(['redis', 'sentinel']);
    const conf = start('start-redis.sh', 'redis-0', '', join(tmp, 'data-first'));
    for (const line of ['appendfsync always', 'save ""', 'min-replicas-to-write 1', 'replica-serve-stale-data no', 'requirepass pw-1']) expect(conf).toContain(line);
    for (const name of ['coordinator', 'enroller']) {
      const env = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === name).spec.template.spec.containers[0].env;
      expect(env.find((e: Obj) => e.name === 'REDIS_MIN_REPLICAS_ACK')?.value, name).toBe('1');
    }
  });

  it('a pod that starts asks the sentinels for the primary: after a failover the old primary comes back as a replica, never as a second primary', () => {
    const data = join(tmp, 'data-0');
    // First start, nobody answers: redis-0 is the primary, the others its replicas.
    expect(start('start-redis.sh', 'redis-0', '', data)).not.toContain('replicaof');
    expect(start('start-redis.sh', 'redis-1', '', join(tmp, 'data-1'))).toContain('replicaof redis-0.yoco-redis-headless 6379');
    // The sentinels moved the primary to redis-2; redis-0 restarts and follows it.
    expect(start('start-redis.sh', 'redis-0', 'redis-2.yoco-redis-headless', data)).toContain('replicaof redis-2.yoco-redis-headless 6379');
    // The whole set restarts (no sentinel up yet): redis-0 follows the last primary its sentinel wrote down.
    const sentinel = start('start-sentinel.sh', 'redis-0', 'redis-2.yoco-redis-headless', data);
    expect(sentinel).toContain('sentinel monitor yoco redis-2.yoco-redis-headless 6379 2');
    expect(start('start-redis.sh', 'redis-0', '', data)).toContain('replicaof redis-2.yoco-redis-headless 6379');
    // A sentinel that restarts keeps what it had learnt (its file on the data volume).
    expect(start('start-sentinel.sh', 'redis-0', '', data)).toContain('sentinel monitor yoco redis-2.yoco-redis-headless 6379 2');
  });
});

describe('k8s/jobs/reshard.yaml', () => {
  it('is a valid Job that runs `yoco reshard --wait` against the Matcher with its CA and an admin token', async () => {
    const [job] = parseAllDocuments(readFileSync(join(ROOT, 'k8s/jobs/reshard.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
    await validate(job);
    const c = job.spec.template.spec.containers[0];
    expect(c.args.slice(0, 2)).toEqual(['yoco', 'reshard']);
    expect(c.args).toContain('--wait');
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
    expect(env.YOCO_ADDRESS.value).toBe('yoco-matcher:50051');
    // The CA is the prod overlay's Matcher certificate Secret.
    const prod = render('prod');
    const certSecrets = prod.filter((o) => o.kind === 'Certificate').map((o) => o.spec.secretName);
    expect(certSecrets).toContain(job.spec.template.spec.volumes[0].secret.secretName);
    expect(prod.some((o) => o.kind === 'Service' && o.metadata.name === 'yoco-matcher')).toBe(true);
  });
});

