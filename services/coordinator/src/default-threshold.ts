import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { getErrorMessage } from '@yoco/common';
import type { Logger } from '@yoco/rpc';

/** Where the threshold in force came from: ClusterStatus.threshold_source. */
export interface ThresholdOrigin {
  threshold: number;
  source: string;
  calibratedAt: string;
  fpir: number;
  gallerySize: number;
  headId: string;
  searches: number;
  extrapolated: boolean;
  measuredFpir: number;
}

interface Settings {
  defaultThreshold: number;
  minThreshold: number;
  thresholdFile: string;
}

/** A calibration file as `yoco calibrate` writes it; only what the coordinator needs is read. */
function parseCalibration(text: string, file: string, min: number): ThresholdOrigin {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`THRESHOLD_FILE ${file} is not JSON: ${getErrorMessage(err)}`);
  }
  const t = c.threshold;
  if (typeof t !== 'number' || !(t > 0 && t <= 1)) throw new Error(`THRESHOLD_FILE ${file}: threshold ${JSON.stringify(t)} is not a number in (0, 1]`);
  if (t < min) throw new Error(`THRESHOLD_FILE ${file}: threshold ${t} is below MIN_THRESHOLD ${min}`);
  const num = (k: string) => (typeof c[k] === 'number' && Number.isFinite(c[k]) ? (c[k] as number) : 0);
  const str = (k: string) => (typeof c[k] === 'string' ? (c[k] as string) : '');
  return {
    threshold: t,
    source: file,
    calibratedAt: str('created_at'),
    fpir: num('fpir'),
    gallerySize: num('gallery_size'),
    headId: str('head_id'),
    searches: num('searches'),
    extrapolated: c.extrapolated === true,
    measuredFpir: typeof c.measured === 'object' && c.measured !== null ? Number((c.measured as { rate?: unknown }).rate ?? 0) || 0 : 0,
  };
}

/**
 * The threshold applied when a request sets none: DEFAULT_THRESHOLD, or the
 * one a calibration file (THRESHOLD_FILE, written by `yoco calibrate`) holds.
 * The file is read at start, where a bad one stops the process (a missing
 * one means not calibrated yet), and again whenever it changes; a bad rewrite keeps the last good threshold and is
 * logged, so a half-written file never lowers the bar.
 */
export class DefaultThreshold {
  private origin: ThresholdOrigin;
  private watching = false;

  constructor(private readonly settings: Settings, private readonly logger: Logger) {
    this.origin = settings.thresholdFile ? this.read() : this.fromSetting();
    if (settings.thresholdFile) {
      this.watching = true;
      // Polling, not fs.watch: a ConfigMap update swaps a symlink, which inotify on the file misses.
      watchFile(settings.thresholdFile, { interval: 1000, persistent: false }, (now: Stats, before: Stats) => {
        if (now.mtimeMs !== before.mtimeMs || now.size !== before.size) this.reload();
      });
    }
  }

  get value(): number {
    return this.origin.threshold;
  }

  get source(): ThresholdOrigin {
    return this.origin;
  }

  private fromSetting(): ThresholdOrigin {
    return { threshold: this.settings.defaultThreshold, source: 'DEFAULT_THRESHOLD', calibratedAt: '', fpir: 0, gallerySize: 0, headId: '', searches: 0, extrapolated: false, measuredFpir: 0 };
  }

  private read(): ThresholdOrigin {
    const file = this.settings.thresholdFile;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      // Not calibrated yet (npm start names the file before `yoco calibrate` has written it): the setting holds until it appears.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.fromSetting();
      throw new Error(`THRESHOLD_FILE ${file} cannot be read: ${getErrorMessage(err)}`);
    }
    return parseCalibration(text, file, this.settings.minThreshold);
  }

  /** Re-reads the file now (the watcher calls it on a change). */
  reload(): void {
    try {
      const next = this.read();
      if (next.threshold !== this.origin.threshold || next.calibratedAt !== this.origin.calibratedAt) {
        this.logger.info({ threshold: next.threshold, was: this.origin.threshold, file: next.source, fpir: next.fpir, gallerySize: next.gallerySize }, 'default threshold changed');
      }
      this.origin = next;
    } catch (err) {
      this.logger.error({ err: getErrorMessage(err), kept: this.origin.threshold }, 'threshold file unusable; keeping the last good threshold');
    }
  }

  close(): void {
    if (this.watching) unwatchFile(this.settings.thresholdFile);
    this.watching = false;
  }
}
