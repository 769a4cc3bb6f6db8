/** A one-line progress bar on stderr (plain lines when stderr is not a terminal). */
export class ProgressBar {
  private done = 0;
  private failed = 0;
  private lastDraw = 0;
  private lastLine = 0;
  private readonly started = Date.now();

  constructor(private readonly total: number, private readonly label: string, private readonly out: NodeJS.WriteStream = process.stderr) {}

  tick(ok = true): void {
    this.done++;
    if (!ok) this.failed++;
    const now = Date.now();
    if (now - this.lastDraw > 100 || this.done === this.total) this.draw(now);
  }

  private draw(now: number): void {
    this.lastDraw = now;
    const frac = this.total > 0 ? this.done / this.total : 1;
    const rate = this.done / Math.max(0.001, (now - this.started) / 1000);
    const line = `${this.label} [${'#'.repeat(Math.round(frac * 30)).padEnd(30, '.')}] ${this.done}/${this.total} ${rate.toFixed(0)}/s${this.failed ? ` (${this.failed} failed)` : ''}`;
    if (this.out.isTTY) this.out.write(`\r${line}`);
    else if (this.done === this.total || now - this.lastLine >= 5000) {
      // Logs get a line every 5 s, not a redraw every 100 ms.
      this.lastLine = now;
      this.out.write(`${line}\n`);
    }
  }

  finish(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}
