/** `/ui/assets/styles.css`: plain CSS, light and dark. */
export const stylesCss = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #fff; --panel: #f5f7fa; --line: #d5dbe3;
  --accent: #2457c5; --ok: #1d7a3a; --warn: #9a5b00; --bad: #b3261e; --arm: #2457c5; --ci: #5b6470; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ee; --muted: #9aa4b2; --bg: #111418; --panel: #1a1f26; --line: #2e3640; --accent: #7aa2ff;
    --ok: #5cc47a; --warn: #e0a040; --bad: #ff7b72; --arm: #7aa2ff; --ci: #9aa4b2; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
/* Headings take focus after navigation (for screen readers); no ring for that. */
h1:focus { outline: none; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 4px 8px; z-index: 1; }
.top { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--panel); }
.brand { font-weight: 700; font-size: 18px; text-decoration: none; color: var(--fg); }
nav ul { display: flex; gap: 4px; list-style: none; margin: 0; padding: 0; }
nav a { display: block; padding: 4px 10px; border-radius: 6px; text-decoration: none; }
nav a[aria-current="page"] { background: var(--accent); color: var(--bg); }
.key-panel { margin-left: auto; display: flex; gap: 8px; align-items: center; color: var(--muted); }
main { padding: 16px 20px 48px; max-width: 1280px; }
h1 { font-size: 24px; margin: 8px 0 12px; }
h2 { font-size: 19px; margin: 24px 0 8px; }
h3 { font-size: 16px; margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-size: 13px; color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.selected { background: var(--panel); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
code.hash { word-break: break-all; }
.muted { color: var(--muted); font-size: 13px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 12px 0; background: var(--bg); }
.row { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; margin: 8px 0; }
.field { display: flex; flex-direction: column; gap: 2px; margin: 6px 0; }
.field.inline { flex-direction: row; align-items: center; gap: 6px; }
.field small { color: var(--muted); }
label { font-weight: 600; font-size: 13px; }
label.inline { font-weight: 400; display: inline-flex; gap: 4px; align-items: center; }
input, select, textarea, button { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
textarea { width: 100%; }
input[type="number"] { width: 7em; }
button { cursor: pointer; background: var(--panel); }
button[type="submit"] { background: var(--accent); color: var(--bg); border-color: var(--accent); }
button.danger { border-color: var(--bad); color: var(--bad); }
button.link { border: none; background: none; color: var(--accent); text-decoration: underline; padding: 2px; }
button:disabled { opacity: 0.5; cursor: default; }
.actions { display: flex; gap: 4px; flex-wrap: wrap; }
.filters { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; }
fieldset.arm { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; border: 1px solid currentColor; }
.badge-active, .badge-running { color: var(--ok); }
.badge-deprecated, .badge-draft { color: var(--warn); }
.badge-yanked, .badge-killed, .badge-stopped { color: var(--bad); }
.badge-kind { color: var(--muted); }
.alias { display: inline-block; margin-right: 8px; }
ul.inline { padding-left: 18px; }
.error { border: 1px solid var(--bad); color: var(--bad); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.warning { border: 2px solid var(--warn); border-radius: 6px; padding: 10px 14px; margin: 8px 0; }
.status { color: var(--ok); min-height: 1.2em; margin: 6px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
pre.output { white-space: pre-wrap; min-height: 4em; padding: 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); }
.card-body { border-left: 3px solid var(--line); padding-left: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure.chart { margin: 0; }
figure.chart figcaption { font-size: 13px; font-weight: 600; margin: 4px 0; }
svg.chart { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
svg.chart text { fill: var(--fg); font-size: 12px; }
svg.chart text.tick, svg.chart text.none { fill: var(--muted); }
svg.chart .axis { stroke: var(--line); }
svg.chart .zero { stroke: var(--muted); stroke-dasharray: 4 3; }
svg.chart .bar { fill: var(--arm); opacity: 0.35; }
svg.chart .dot { fill: var(--arm); }
svg.chart .whisker { stroke: var(--ci); stroke-width: 2; }
`;
