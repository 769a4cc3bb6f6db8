import { ConfigError, getErrorMessage } from './errors/index.js';

/** How one environment variable is read: its parser gets the raw string and throws a message when it is unusable. */
export interface EnvVar<T> {
  default: T | (() => T);
  parse: (raw: string) => T;
  /** Shown by --help style listings and the README. */
  doc: string;
}

export type EnvSpec<C> = { [K in keyof C]: EnvVar<C[K]> & { name: string } };

/**
 * Reads a typed config from the environment. Every variable is validated at
 * once; the first unusable one throws a ConfigError naming it.
 */
export function readEnv<C>(spec: EnvSpec<C>, env: NodeJS.ProcessEnv = process.env): C {
  const out = {} as C;
  for (const key of Object.keys(spec) as (keyof C)[]) {
    const v = spec[key];
    const raw = env[v.name];
    if (raw === undefined || raw === '') {
      out[key] = typeof v.default === 'function' ? (v.default as () => C[keyof C])() : v.default;
      continue;
    }
    try {
      out[key] = v.parse(raw);
    } catch (err) {
      throw new ConfigError(v.name, `${getErrorMessage(err)} (got '${raw}')`);
    }
  }
  return out;
}

/**
 * Every problem with an environment at once, for --check-config: each
 * variable of the spec that is set but unusable, and each variable that
 * starts with one of `ownPrefixes` but is not in the spec (a typo in a
 * manifest must not pass silently). The config is returned when there is none.
 */
export function checkEnv<C>(spec: EnvSpec<C>, env: NodeJS.ProcessEnv, ownPrefixes: string[] = ['YOCO_'], alsoKnown: string[] = ['YOCO_FAILPOINTS']): { config?: C; problems: string[] } {
  const problems: string[] = [];
  const known = new Set([...Object.values<EnvVar<unknown> & { name: string }>(spec as Record<string, EnvVar<unknown> & { name: string }>).map((v) => v.name), ...alsoKnown]);
  for (const key of Object.keys(spec) as (keyof C)[]) {
    const v = spec[key];
    const raw = env[v.name];
    try {
      if (raw !== undefined && raw !== '') v.parse(raw);
      else if (typeof v.default === 'function') (v.default as () => unknown)();
    } catch (err) {
      problems.push(raw ? `${v.name}: ${getErrorMessage(err)} (got '${raw}')` : `${v.name}: ${getErrorMessage(err)}`);
    }
  }
  for (const name of Object.keys(env).sort()) {
    if (ownPrefixes.some((p) => name.startsWith(p)) && !known.has(name)) problems.push(`${name}: not a setting of this service (a typo?)`);
  }
  if (problems.length > 0) return { problems };
  return { config: readEnv(spec, env), problems };
}

export const parse = {
  int(min: number, max = Number.MAX_SAFE_INTEGER) {
    return (raw: string): number => {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error('expected an integer');
      const n = Number(raw);
      if (n < min || n > max) throw new Error(`expected an integer from ${min} to ${max}`);
      return n;
    };
  },
  number(min: number, max: number) {
    return (raw: string): number => {
      const n = Number(raw);
      if (!Number.isFinite(n) || raw.trim() === '') throw new Error('expected a number');
      if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}`);
      return n;
    };
  },
  string(raw: string): string {
    return raw;
  },
  bool(raw: string): boolean {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new Error('expected true or false');
  },
  oneOf<T extends string>(...values: T[]) {
    return (raw: string): T => {
      if (!values.includes(raw as T)) throw new Error(`expected one of ${values.join(', ')}`);
      return raw as T;
    };
  },
  list(raw: string): string[] {
    return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  },
  /** host:port; port 0 allowed (bind any free port). */
  address(raw: string): string {
    if (!/^[^\s:]+:\d{1,5}$/.test(raw) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(raw)) throw new Error('expected host:port');
    return raw;
  },
};

/** 'host:port' -> [host, port]; IPv6 in brackets keeps its brackets off. */
export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), Number(address.slice(i + 1))];
}
