/**
 * Browser module `/ui/assets/markdown.js`: model cards as simple markdown (headings, paragraphs,
 * lists, code, bold, italics, http(s) links), built as DOM nodes so raw HTML in a card stays text.
 */
import { h, type Child } from './dom.ts';

const FENCE = /^```/;
const INLINE = /(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*|\[[^\]]+\]\([^)\s]+\))/;

function inline(text: string): Child[] {
  const out: Child[] = [];
  for (const part of text.split(INLINE)) {
    if (!part) continue;
    if (part.startsWith('`') && part.endsWith('`') && part.length > 1) out.push(h('code', {}, part.slice(1, -1)));
    else if (part.startsWith('**') && part.endsWith('**') && part.length > 4) {
      out.push(h('strong', {}, part.slice(2, -2)));
    } else if (part.startsWith('*') && part.endsWith('*') && part.length > 2) out.push(h('em', {}, part.slice(1, -1)));
    else if (part.startsWith('[')) {
      const m = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(part);
      // Only http(s) links become anchors (no javascript: URLs); they open without a referrer.
      if (m && /^https?:\/\//i.test(m[2])) {
        out.push(h('a', { href: m[2], rel: 'noopener noreferrer nofollow', target: '_blank' }, m[1]));
      } else out.push(part);
    } else out.push(part);
  }
  return out;
}

export function markdown(source: string): HTMLDivElement {
  const root = h('div', { class: 'markdown' });
  const lines = String(source).replace(/\r\n/g, '\n').split('\n');
  let para: string[] = [];
  let list: HTMLElement | null = null;
  const flush = () => {
    if (para.length) root.append(h('p', {}, inline(para.join(' '))));
    para = [];
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (FENCE.test(line)) {
      flush();
      const code = [];
      for (i++; i < lines.length && !FENCE.test(lines[i]); i++) code.push(lines[i]);
      root.append(h('pre', {}, h('code', {}, code.join('\n'))));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      // Card headings sit under the page's own h1/h2.
      root.append(h(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
    } else if (bullet || numbered) {
      if (para.length) flush();
      const tag = bullet ? 'ul' : 'ol';
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = h(tag);
        root.append(list);
      }
      list.append(h('li', {}, inline((bullet || numbered)![1])));
    } else if (!line.trim()) {
      flush();
    } else {
      list = null;
      para.push(line.trim());
    }
  }
  flush();
  return root;
}
