import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout: one object per event, with the service name and pid. */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } });
}
