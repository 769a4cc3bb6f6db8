import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEPLOY = fileURLToPath(new URL('../../deploy', import.meta.url));

/** Every expression of the Grafana dashboard. */
export function dashboardExprs(): string[] {
  const dash = JSON.parse(readFileSync(join(DEPLOY, 'grafana/yoco.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  return dash.panels.flatMap((p) => p.targets.map((t) => t.expr));
}

/** The yoco_* series an expression reads, without the suffixes histograms add. */
export function metricNames(exprs: string[]): string[] {
  return [...new Set(exprs.flatMap((e) => [...e.matchAll(/\byoco_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''))))].sort();
}

