import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** What `npm start` writes in its data directory: the running cluster's endpoints (no secrets). */
export interface ClusterFile {
  matcher: string;
  redis: string;
  pid: number;
  caFile?: string;
  tokensFile?: string;
  processes: { name: string; pid: number; metrics: string }[];
}

export function clusterFile(dataDir: string): string {
  return join(dataDir, 'cluster.json');
}

/** The local cluster `npm start` runs (YOCO_DATA_DIR, default .yoco), if one does. */
export function localCluster(env: NodeJS.ProcessEnv = process.env): ClusterFile | undefined {
  const file = clusterFile(resolve(env.YOCO_DATA_DIR || '.yoco'));
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ClusterFile;
  } catch {
    return undefined;
  }
}
