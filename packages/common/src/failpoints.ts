import { ConfigError } from './errors/index.js';

/**
 * Named fault points for tests, in the one place production code consults
 * them. Off unless YOCO_FAILPOINTS names them:
 *
 *   YOCO_FAILPOINTS="shard.search-delay-ms=1500,enroller.crash-after-apply=crash-me"
 *
 * Each point is `name` or `name=value`; a point not named is never active, so
 * a deployment that does not set the variable runs exactly the code it always
 * runs. Known points (a name not in this list stops the process at start):
 */
export const FAILPOINTS = {
  /** ms every Search sleeps before it is scanned (to exercise hedging and drains). */
  'shard.search-delay-ms': 'int',
  /** ms a shard waits before its first load (to observe LOADING). */
  'shard.load-delay-ms': 'int',
  /** A subject id: the enroller exits (code 3) right after applying that subject's job, before completing it. */
  'enroller.crash-after-apply': 'string',
} as const;

export type FailpointName = keyof typeof FAILPOINTS;

function parse(raw: string | undefined): Map<FailpointName, string> {
  const out = new Map<FailpointName, string>();
  for (const part of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    const name = (i < 0 ? part : part.slice(0, i)) as FailpointName;
    const value = i < 0 ? 'on' : part.slice(i + 1);
    if (!(name in FAILPOINTS)) throw new ConfigError('YOCO_FAILPOINTS', `unknown fault point '${name}' (known: ${Object.keys(FAILPOINTS).join(', ')})`);
    if (FAILPOINTS[name] === 'int' && !/^\d+$/.test(value)) throw new ConfigError('YOCO_FAILPOINTS', `${name} takes a whole number, got '${value}'`);
    out.set(name, value);
  }
  return out;
}

let active: Map<FailpointName, string> | undefined;

/** The value of a fault point when YOCO_FAILPOINTS names it, else undefined. Read once per process. */
export function failpoint(name: FailpointName): string | undefined {
  active ??= parse(process.env.YOCO_FAILPOINTS);
  return active.get(name);
}

/** A numeric fault point's value, or 0 when it is off. */
export function failpointMs(name: FailpointName): number {
  return Number(failpoint(name) ?? 0);
}

/** Checks YOCO_FAILPOINTS at start, so a misspelt point stops the process instead of silently doing nothing. */
export function checkFailpoints(env: NodeJS.ProcessEnv = process.env): void {
  active = parse(env.YOCO_FAILPOINTS);
}
