/**
 * Browser module `/ui/assets/charts.js`: the experiment charts as small hand-written SVG. Hand-written
 * because no chart library can be loaded here without a bundler or a CDN, and these charts are only
 * bars, dots and whiskers.
 */
import { h, s, sig } from './dom.ts';

const W = 560;
const LABEL = 130;
const RIGHT = 150;
const ROW = 34;
const TOP = 8;
const AXIS = 26;

/** One row of an interval chart: a value with its 95 % interval; null value: no data yet. */
interface IntervalRow {
  label: string;
  value: number | null;
  ci?: readonly number[] | null;
  /** The always-valid (sequential) interval, drawn wider and lighter behind the fixed one. */
  sequence?: readonly number[] | null;
  note?: string;
}

/** One arm of the latency chart, in milliseconds; null p50: no requests yet. */
export interface LatencyRow {
  label: string;
  p50: number | null;
  p95: number | null;
  mean: number | null;
}

interface Scale {
  lo: number;
  hi: number;
  x: (v: number) => number;
  x0: number;
  x1: number;
}

function scale(values: number[], includeZero: boolean): Scale {
  let lo = Math.min(...values, includeZero ? 0 : Infinity);
  let hi = Math.max(...values, includeZero ? 0 : -Infinity);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const pad = (hi - lo) * 0.05;
  if (!(includeZero && lo === 0)) lo -= pad;
  hi += pad;
  const x0 = LABEL;
  const x1 = W - RIGHT;
  const x = (v: number) => x0 + ((v - lo) / (hi - lo)) * (x1 - x0);
  return { lo, hi, x, x0, x1 };
}

function frame(title: string, testid: string, rows: number, summary: string): SVGSVGElement {
  const height = TOP + rows * ROW + AXIS;
  return s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${W} ${height}`,
      width: W,
      height,
      role: 'img',
      'aria-label': `${title}. ${summary}`,
      testid,
    },
    s('title', {}, title),
  );
}

// A chart with its title visible above it.
function figure(title: string, svg: SVGSVGElement): HTMLElement {
  return h('figure', { class: 'chart' }, h('figcaption', {}, title), svg);
}

function axis(svg: SVGSVGElement, sc: Scale, rows: number, unit: string, zeroLine: boolean): void {
  const y = TOP + rows * ROW + 4;
  svg.append(s('line', { class: 'axis', x1: sc.x0, x2: sc.x1, y1: y, y2: y }));
  for (const v of [sc.lo, (sc.lo + sc.hi) / 2, sc.hi]) {
    const tick = sig(v, 3) + (unit ? ` ${unit}` : '');
    svg.append(s('text', { class: 'tick', x: sc.x(v), y: y + 16, 'text-anchor': 'middle' }, tick));
  }
  if (zeroLine && sc.lo < 0 && sc.hi > 0) {
    svg.append(s('line', { class: 'zero', x1: sc.x(0), x2: sc.x(0), y1: TOP - 4, y2: y }));
  }
}

function whisker(g: SVGGElement, sc: Scale, lo: number, hi: number, y: number, cls = 'whisker'): void {
  g.append(
    s('line', { class: cls, x1: sc.x(lo), x2: sc.x(hi), y1: y, y2: y }),
    s('line', { class: cls, x1: sc.x(lo), x2: sc.x(lo), y1: y - 6, y2: y + 6 }),
    s('line', { class: cls, x1: sc.x(hi), x2: sc.x(hi), y1: y - 6, y2: y + 6 }),
  );
}

// A row's group: its label on the left, then what the chart draws for it.
function rowGroup(label: string, y: number): SVGGElement {
  const g = s('g', { class: 'row', 'data-arm': label });
  g.append(s('text', { class: 'label', x: LABEL - 8, y: y + 4, 'text-anchor': 'end' }, label));
  return g;
}

function noData(g: SVGGElement, sc: Scale, y: number): void {
  g.append(s('text', { class: 'none', x: sc.x0, y: y + 4 }, 'no data yet'));
}

interface IntervalChart {
  title: string;
  rows: IntervalRow[];
  unit?: string;
  /** Draws the "no difference" line, for arm-minus-control charts. */
  zeroLine?: boolean;
  testid: string;
}

// Dots with 95 % interval whiskers.
export function intervalChart({ title, rows, unit = '', zeroLine = false, testid }: IntervalChart): HTMLElement {
  const values = rows.flatMap((r) => (r.value === null ? [] : [r.value, ...(r.ci || []), ...(r.sequence || [])]));
  const sc = scale(values, !!zeroLine);
  const summary = rows
    .map((r) => {
      if (r.value === null) return `${r.label}: no data`;
      const ci = r.ci ? ` (95 % CI ${sig(r.ci[0])} to ${sig(r.ci[1])})` : '';
      const cs = r.sequence ? ` (always-valid ${sig(r.sequence[0])} to ${sig(r.sequence[1])})` : '';
      return `${r.label}: ${sig(r.value)}${ci}${cs}`;
    })
    .join('; ');
  const svg = frame(title, testid, rows.length, summary);
  rows.forEach((r, i) => {
    const y = TOP + i * ROW + ROW / 2;
    const g = rowGroup(r.label, y);
    if (r.value === null) {
      noData(g, sc, y);
    } else {
      if (r.sequence) whisker(g, sc, r.sequence[0], r.sequence[1], y, 'sequence');
      if (r.ci) whisker(g, sc, r.ci[0], r.ci[1], y);
      const dot = { class: 'dot', cx: sc.x(r.value), cy: y, r: 5 };
      g.append(s('circle', dot, s('title', {}, `${r.label}: ${sig(r.value)}`)));
      const text =
        sig(r.value) +
        (unit ? ` ${unit}` : '') +
        (r.ci ? ` ± ${sig((r.ci[1] - r.ci[0]) / 2, 2)}` : '') +
        (r.note ? ` ${r.note}` : '');
      g.append(s('text', { class: 'value', x: sc.x1 + 10, y: y + 4 }, text));
    }
    svg.append(g);
  });
  if (values.length) axis(svg, sc, rows.length, unit, zeroLine);
  return figure(title, svg);
}

// Latency per arm: a bar to the median, a whisker on to p95, a dot at the mean.
export function latencyChart({
  title,
  rows,
  testid,
}: {
  title: string;
  rows: LatencyRow[];
  testid: string;
}): HTMLElement {
  const values = rows.flatMap((r) => [r.p50, r.p95, r.mean].filter((v): v is number => v !== null));
  const sc = scale(values, true);
  const summary = rows
    .map((r) => {
      if (r.p50 === null) return `${r.label}: no data`;
      return `${r.label}: median ${sig(r.p50)} ms, p95 ${sig(r.p95)} ms`;
    })
    .join('; ');
  const svg = frame(title, testid, rows.length, summary);
  rows.forEach((r, i) => {
    const y = TOP + i * ROW + ROW / 2;
    const g = rowGroup(r.label, y);
    if (r.p50 === null) {
      noData(g, sc, y);
    } else {
      const bar = { class: 'bar', x: sc.x(0), y: y - 8, width: Math.max(1, sc.x(r.p50) - sc.x(0)), height: 16 };
      g.append(s('rect', bar, s('title', {}, `${r.label} median: ${sig(r.p50)} ms`)));
      // A row with a median has a p95 (the API gives both or neither).
      whisker(g, sc, r.p50, r.p95!, y);
      if (r.mean !== null) {
        const dot = { class: 'dot', cx: sc.x(r.mean), cy: y, r: 4 };
        g.append(s('circle', dot, s('title', {}, `${r.label} mean: ${sig(r.mean)} ms`)));
      }
      g.append(s('text', { class: 'value', x: sc.x1 + 10, y: y + 4 }, `p50 ${sig(r.p50)} · p95 ${sig(r.p95)} ms`));
    }
    svg.append(g);
  });
  if (values.length) axis(svg, sc, rows.length, 'ms', false);
  return figure(title, svg);
}
