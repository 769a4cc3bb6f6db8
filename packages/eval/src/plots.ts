import sharp from 'sharp';
import type { Histogram } from './histogram.js';
import type { CurvePoint } from './verification.js';

/**
 * Plots as SVG, drawn here (a few axes and polylines need no plotting
 * library), and rasterised with sharp (librsvg), so no native canvas is
 * needed. Every series of one plot shares its axes, so curves of two heads
 * can be compared on one picture.
 */
export interface Series<P> {
  name: string;
  points: P;
}

const W = 640;
const H = 440;
const M = { left: 70, right: 20, top: 40, bottom: 56 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

function esc(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

interface Axis {
  min: number;
  max: number;
  log: boolean;
  label: string;
  ticks: number[];
}

function logAxis(min: number, max: number, label: string): Axis {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
  return { min: 10 ** lo, max: 10 ** hi, log: true, label, ticks };
}

function linAxis(min: number, max: number, label: string, step: number): Axis {
  const ticks: number[] = [];
  for (let v = min; v <= max + 1e-9; v += step) ticks.push(Number(v.toFixed(6)));
  return { min, max, log: false, label, ticks };
}

function scale(a: Axis, v: number, from: number, to: number): number {
  const f = a.log ? (Math.log10(v) - Math.log10(a.min)) / (Math.log10(a.max) - Math.log10(a.min)) : (v - a.min) / (a.max - a.min);
  return from + f * (to - from);
}

function tickLabel(a: Axis, v: number): string {
  return a.log ? (v >= 1 ? String(v) : `1e${Math.round(Math.log10(v))}`) : String(v);
}

/** Where the legend goes: the corner the curves leave empty. */
type Corner = 'top-right' | 'bottom-left' | 'bottom-right';

function frame(title: string, x: Axis, y: Axis, body: string, legend: string[], corner: Corner = 'top-right'): string {
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const y1 = M.top;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  for (const t of x.ticks) {
    const px = scale(x, t, x0, x1);
    parts.push(`<line x1="${px}" y1="${y0}" x2="${px}" y2="${y1}" stroke="#e5e5e5"/>`, `<text x="${px}" y="${y0 + 16}" text-anchor="middle">${tickLabel(x, t)}</text>`);
  }
  for (const t of y.ticks) {
    const py = scale(y, t, y0, y1);
    parts.push(`<line x1="${x0}" y1="${py}" x2="${x1}" y2="${py}" stroke="#e5e5e5"/>`, `<text x="${x0 - 6}" y="${py + 4}" text-anchor="end">${tickLabel(y, t)}</text>`);
  }
  parts.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(x0 + x1) / 2}" y="${H - 14}" text-anchor="middle">${esc(x.label)}</text>`);
  parts.push(`<text x="18" y="${(y0 + y1) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(y0 + y1) / 2})">${esc(y.label)}</text>`);
  parts.push(body);
  const lx = corner === 'bottom-left' ? x0 + 12 : x1 - 170;
  const top = corner === 'top-right' ? y1 + 16 : y0 - 12 - (legend.length - 1) * 18;
  parts.push(`<rect x="${lx - 6}" y="${top - 14}" width="164" height="${legend.length * 18 + 6}" fill="white" fill-opacity="0.85"/>`);
  legend.forEach((name, i) => {
    const ly = top + i * 18;
    parts.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 20}" y2="${ly - 4}" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"/>`, `<text x="${lx + 25}" y="${ly}">${esc(name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** DET: FNMR against FMR, both on log scales (the NIST convention). */
export function detSvg(series: Series<CurvePoint[]>[], title = 'DET (1:1)'): string {
  const pts = series.flatMap((s) => s.points);
  const floor = Math.max(1e-6, Math.min(...pts.map((p) => p.fmr).filter((v) => v > 0), 1e-4));
  const fnFloor = Math.max(1e-4, Math.min(1e-2, ...pts.map((p) => p.fnmr).filter((v) => v > 0)));
  const x = logAxis(floor, 1, 'FMR (false match rate)');
  const y = logAxis(fnFloor, 1, 'FNMR (false non-match rate)');
  const body = series
    .map((s, i) => {
      const line = s.points
        .map((p) => `${scale(x, Math.max(p.fmr, x.min), M.left, W - M.right).toFixed(1)},${scale(y, Math.max(p.fnmr, y.min), H - M.bottom, M.top).toFixed(1)}`)
        .join(' ');
      return `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2" points="${line}"/>`;
    })
    .join('\n');
  return frame(title, x, y, body, series.map((s) => s.name), 'bottom-left');
}

/** ROC: true match rate (1 - FNMR) against FMR on a log scale. */
export function rocSvg(series: Series<CurvePoint[]>[], title = 'ROC (1:1)'): string {
  const pts = series.flatMap((s) => s.points);
  const floor = Math.max(1e-6, Math.min(...pts.map((p) => p.fmr).filter((v) => v > 0), 1e-4));
  const x = logAxis(floor, 1, 'FMR (false match rate)');
  const y = linAxis(0, 1, 'TMR (1 - FNMR)', 0.2);
  const body = series
    .map((s, i) => {
      const line = s.points.map((p) => `${scale(x, Math.max(p.fmr, x.min), M.left, W - M.right).toFixed(1)},${scale(y, 1 - p.fnmr, H - M.bottom, M.top).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2" points="${line}"/>`;
    })
    .join('\n');
  return frame(title, x, y, body, series.map((s) => s.name), 'bottom-right');
}

/** Genuine and impostor score histograms, each normalised to its own total (so both show). */
export function histogramSvg(h: Histogram, title = 'Scores: genuine vs impostor pairs'): string {
  const share = (c: number[]) => {
    const t = c.reduce((a, b) => a + b, 0) || 1;
    return c.map((v) => v / t);
  };
  const g = share(h.genuine);
  const im = share(h.impostor);
  const top = Math.max(0.05, ...g, ...im);
  const yMax = Math.ceil(top * 10) / 10;
  const x = linAxis(0, 1, 'score', 0.1);
  const y = linAxis(0, yMax, 'share of pairs', yMax / 5);
  const bars = (v: number[], colour: string) =>
    v
      .map((share, i) => {
        const xa = scale(x, h.edges[i], M.left, W - M.right);
        const xb = scale(x, h.edges[i + 1], M.left, W - M.right);
        const ya = scale(y, share, H - M.bottom, M.top);
        return `<rect x="${xa.toFixed(1)}" y="${ya.toFixed(1)}" width="${(xb - xa).toFixed(1)}" height="${(H - M.bottom - ya).toFixed(1)}" fill="${colour}" fill-opacity="0.45"/>`;
      })
      .join('\n');
  return frame(title, x, y, `${bars(im, COLOURS[1])}\n${bars(g, COLOURS[0])}`, ['genuine', 'impostor'].map((n) => n));
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}
