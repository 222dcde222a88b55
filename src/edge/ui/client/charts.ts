/**
 * Browser module `/ui/assets/charts.js`: the experiment charts as small hand-written SVG. Hand-written
 * because no chart library can be loaded here without a bundler or a CDN, and these charts are only
 * bars, dots and whiskers.
 */
export const chartsJs = String.raw`
import { h, s, sig } from './dom.js';

const W = 560;
const LABEL = 130;
const RIGHT = 150;
const ROW = 34;
const TOP = 8;
const AXIS = 26;

function scale(values, includeZero) {
  let lo = Math.min(...values, includeZero ? 0 : Infinity);
  let hi = Math.max(...values, includeZero ? 0 : -Infinity);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (lo === hi) { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
  const pad = (hi - lo) * 0.05;
  if (!(includeZero && lo === 0)) lo -= pad;
  hi += pad;
  const x0 = LABEL;
  const x1 = W - RIGHT;
  const x = (v) => x0 + ((v - lo) / (hi - lo)) * (x1 - x0);
  return { lo, hi, x, x0, x1 };
}

function frame(title, testid, rows, summary) {
  const height = TOP + rows * ROW + AXIS;
  return s('svg', {
    class: 'chart', viewBox: '0 0 ' + W + ' ' + height, width: W, height, role: 'img',
    'aria-label': title + '. ' + summary, testid,
  }, s('title', {}, title));
}

// A chart with its title visible above it.
function figure(title, svg) {
  return h('figure', { class: 'chart' }, h('figcaption', {}, title), svg);
}

function axis(svg, sc, rows, unit, zeroLine) {
  const y = TOP + rows * ROW + 4;
  svg.append(s('line', { class: 'axis', x1: sc.x0, x2: sc.x1, y1: y, y2: y }));
  for (const v of [sc.lo, (sc.lo + sc.hi) / 2, sc.hi]) {
    svg.append(s('text', { class: 'tick', x: sc.x(v), y: y + 16, 'text-anchor': 'middle' }, sig(v, 3) + (unit ? ' ' + unit : '')));
  }
  if (zeroLine && sc.lo < 0 && sc.hi > 0) {
    svg.append(s('line', { class: 'zero', x1: sc.x(0), x2: sc.x(0), y1: TOP - 4, y2: y }));
  }
}

function whisker(g, sc, lo, hi, y) {
  g.append(
    s('line', { class: 'whisker', x1: sc.x(lo), x2: sc.x(hi), y1: y, y2: y }),
    s('line', { class: 'whisker', x1: sc.x(lo), x2: sc.x(lo), y1: y - 6, y2: y + 6 }),
    s('line', { class: 'whisker', x1: sc.x(hi), x2: sc.x(hi), y1: y - 6, y2: y + 6 }),
  );
}

// Dots with 95 % interval whiskers. rows: [{ label, value, ci: [lo, hi] | null, note }].
// zeroLine draws the "no difference" line for arm-minus-control charts.
export function intervalChart({ title, rows, unit = '', zeroLine = false, testid }) {
  const values = rows.flatMap((r) => (r.value === null ? [] : [r.value, ...(r.ci || [])]));
  const sc = scale(values, !!zeroLine);
  const summary = rows.map((r) => r.label + ': ' + (r.value === null ? 'no data' : sig(r.value) + (r.ci ? ' (95 % CI ' + sig(r.ci[0]) + ' to ' + sig(r.ci[1]) + ')' : ''))).join('; ');
  const svg = frame(title, testid, rows.length, summary);
  rows.forEach((r, i) => {
    const y = TOP + i * ROW + ROW / 2;
    const g = s('g', { class: 'row', 'data-arm': r.label });
    g.append(s('text', { class: 'label', x: LABEL - 8, y: y + 4, 'text-anchor': 'end' }, r.label));
    if (r.value === null) {
      g.append(s('text', { class: 'none', x: sc.x0, y: y + 4 }, 'no data yet'));
    } else {
      if (r.ci) whisker(g, sc, r.ci[0], r.ci[1], y);
      g.append(s('circle', { class: 'dot', cx: sc.x(r.value), cy: y, r: 5 }, s('title', {}, r.label + ': ' + sig(r.value))));
      g.append(s('text', { class: 'value', x: sc.x1 + 10, y: y + 4 }, sig(r.value) + (unit ? ' ' + unit : '') + (r.ci ? ' ± ' + sig((r.ci[1] - r.ci[0]) / 2, 2) : '') + (r.note ? ' ' + r.note : '')));
    }
    svg.append(g);
  });
  if (values.length) axis(svg, sc, rows.length, unit, zeroLine);
  return figure(title, svg);
}

// Latency per arm: a bar to the median, a whisker on to p95, a dot at the mean.
// rows: [{ label, p50, p95, mean }].
export function latencyChart({ title, rows, testid }) {
  const values = rows.flatMap((r) => [r.p50, r.p95, r.mean].filter((v) => v !== null));
  const sc = scale(values, true);
  const summary = rows.map((r) => r.label + ': ' + (r.p50 === null ? 'no data' : 'median ' + sig(r.p50) + ' ms, p95 ' + sig(r.p95) + ' ms')).join('; ');
  const svg = frame(title, testid, rows.length, summary);
  rows.forEach((r, i) => {
    const y = TOP + i * ROW + ROW / 2;
    const g = s('g', { class: 'row', 'data-arm': r.label });
    g.append(s('text', { class: 'label', x: LABEL - 8, y: y + 4, 'text-anchor': 'end' }, r.label));
    if (r.p50 === null) {
      g.append(s('text', { class: 'none', x: sc.x0, y: y + 4 }, 'no data yet'));
    } else {
      g.append(s('rect', { class: 'bar', x: sc.x(0), y: y - 8, width: Math.max(1, sc.x(r.p50) - sc.x(0)), height: 16 }, s('title', {}, r.label + ' median: ' + sig(r.p50) + ' ms')));
      whisker(g, sc, r.p50, r.p95, y);
      if (r.mean !== null) g.append(s('circle', { class: 'dot', cx: sc.x(r.mean), cy: y, r: 4 }, s('title', {}, r.label + ' mean: ' + sig(r.mean) + ' ms')));
      g.append(s('text', { class: 'value', x: sc.x1 + 10, y: y + 4 }, 'p50 ' + sig(r.p50) + ' · p95 ' + sig(r.p95) + ' ms'));
    }
    svg.append(g);
  });
  if (values.length) axis(svg, sc, rows.length, 'ms', false);
  return figure(title, svg);
}
`;
