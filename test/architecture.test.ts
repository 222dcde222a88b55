import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHITECTURES } from '../src/engine/model/config.ts';
import { ARCHITECTURE_MODULES } from '../src/engine/archs/index.ts';

/**
 * The layering rule (README "Architecture"), read from the sources' imports:
 * - src/http (the shared HTTP kernel) and src/engine import no product layer above them;
 * - registry/ imports only the kernel and the engine's format code (never onnxruntime, even
 *   indirectly: the registry runs in a Worker);
 * - src/experiments (the experiment feature, whole) builds on the kernel, the registry and the
 *   engine's format code; the edge imports it, never the reverse, and it never reaches onnxruntime;
 * - the edge reaches compute nodes over HTTP only; compute never imports the registry or the edge.
 */
const ROOT = resolve(import.meta.dirname, '..');
const ENGINE_FORMAT = [
  'src/engine/adapters/',
  'src/engine/weights/',
  'src/engine/model/',
  'src/engine/loaders/',
  'src/engine/tokenizer/',
];
const RULES: Array<{ from: string; forbidden: (target: string) => boolean; why: string }> = [
  { from: 'src/http/', forbidden: (t) => !t.startsWith('src/http/'), why: 'the kernel imports nothing of the product' },
  {
    from: 'src/engine/',
    forbidden: (t) => !t.startsWith('src/engine/') && !t.startsWith('src/util/'),
    why: 'the engine knows nothing of HTTP',
  },
  {
    from: 'registry/',
    forbidden: (t) =>
      !t.startsWith('registry/') && !t.startsWith('src/http/') && !ENGINE_FORMAT.some((p) => t.startsWith(p)),
    why: "the registry imports only the kernel and the engine's format code",
  },
  {
    from: 'src/experiments/',
    forbidden: (t) =>
      !t.startsWith('src/experiments/') &&
      !t.startsWith('src/http/') &&
      !t.startsWith('src/util/') &&
      !t.startsWith('registry/') &&
      !ENGINE_FORMAT.some((p) => t.startsWith(p)),
    why: 'experiments import the kernel, the registry and format code: the edge imports them, not the reverse',
  },
  {
    from: 'src/protocol/',
    forbidden: (t) => !t.startsWith('src/protocol/') && t !== 'src/engine/generation/request.ts',
    why: "the compute protocol is data: it knows only the engine's request type",
  },
  {
    from: 'src/compute/',
    forbidden: (t) => t.startsWith('registry/') || t.startsWith('src/edge/'),
    why: 'compute imports kernel and engine only',
  },
  {
    from: 'src/edge/',
    forbidden: (t) => t.startsWith('src/compute/') || /^src\/engine\/(runtime|graph|worker)\//.test(t),
    why: 'the edge reaches compute over HTTP',
  },
  {
    from: 'src/edge/routing/',
    forbidden: (t) => t.startsWith('src/experiments/') || t.startsWith('registry/'),
    why: 'routing owns its pools and hash: it needs neither experiments nor the registry',
  },
];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Import specifiers of a file (static and dynamic imports, re-exports). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const pattern = new RegExp(
    [
      /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/.source,
      /import\(\s*['"]([^'"]+)['"]\s*\)/.source,
      /(?:^|\n)\s*import\s+['"]([^'"]+)['"]/.source,
    ].join('|'),
    'g',
  );
  return [...text.matchAll(pattern)].map((m) => m[1] ?? m[2] ?? m[3]);
}

const files = [...sources('src'), ...sources('registry')];
const graph = new Map(
  files.map((f) => [
    f,
    importsOf(f).map((spec) => (spec.startsWith('.') ? relative(ROOT, normalize(join(ROOT, dirname(f), spec))) : spec)),
  ]),
);

describe('layers point one way', () => {
  for (const rule of RULES) {
    it(`${rule.from}: ${rule.why}`, () => {
      const offending = files
        .filter((f) => f.startsWith(rule.from))
        .flatMap((f) =>
          graph
            .get(f)!
            .filter((t) => (t.startsWith('src/') || t.startsWith('registry/')) && rule.forbidden(t))
            .map((t) => `${f} -> ${t}`),
        );
      expect(offending).toEqual([]);
    });
  }

  it('experiment routes are declared in src/experiments/routes/ only (one home, mounted once)', () => {
    const route = /path:\s*'\/v1\/(experiments|feedback|stats)\b/;
    const elsewhere = files.filter(
      (f) => !f.startsWith('src/experiments/routes/') && route.test(readFileSync(join(ROOT, f), 'utf8')),
    );
    expect(elsewhere).toEqual([]);
  });

  it('nothing under registry/ or src/experiments/ reaches onnxruntime-node, directly or indirectly', () => {
    const seen = new Set<string>();
    const chains: string[] = [];
    const visit = (file: string, path: string[]) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const t of graph.get(file) ?? []) {
        if (t === 'onnxruntime-node') chains.push([...path, file].join(' -> '));
        else if (graph.has(t)) visit(t, [...path, file]);
      }
    };
    for (const f of files.filter((f) => f.startsWith('registry/') || f.startsWith('src/experiments/'))) visit(f, []);
    expect(chains).toEqual([]);
    expect(seen.size).toBeGreaterThan(20); // the walk did follow imports
  });
});

/**
 * One home per architecture (CONTRIBUTING "Adding an architecture"): its module under
 * src/engine/archs/ declares it, the list in archs/index.ts names it once, and nothing else
 * switches on architecture names; the shared code asks the module instead.
 */
describe('an architecture is one module and one line', () => {
  const ARCHS = 'src/engine/archs/';
  const declared = (name: string) =>
    files.filter(
      (f) => f.startsWith(ARCHS) && new RegExp(`\\bname: '${name}'`).test(readFileSync(join(ROOT, f), 'utf8')),
    );

  it.each(ARCHITECTURES)('%s is declared by exactly one module under src/engine/archs/, listed once', (name) => {
    expect(declared(name)).toHaveLength(1);
    expect(ARCHITECTURE_MODULES.filter((a) => a.name === name)).toHaveLength(1);
  });

  it('the list is the architectures: ModelConfig.architecture takes its values from it', () => {
    expect([...ARCHITECTURES]).toEqual(ARCHITECTURE_MODULES.map((a) => a.name));
    // The modules the list imports are those that declare an architecture.
    const imported = graph
      .get(`${ARCHS}index.ts`)!
      .filter((t) => t.startsWith(ARCHS) && t !== `${ARCHS}architecture.ts`);
    expect(new Set(imported)).toEqual(new Set(ARCHITECTURES.flatMap(declared)));
  });

  it('nothing outside src/engine/archs/ switches on an architecture name', () => {
    const names = ARCHITECTURES.join('|');
    const switches = [
      /\barchitecture\s*[!=]==\s*['"`]|['"`]\s*[!=]==\s*[\w.?]*\barchitecture\b/, // c.architecture === 'any name'
      new RegExp(`[!=]==\\s*'(${names})'|'(${names})'\\s*[!=]==`), // family === 'gemma2'
      new RegExp(`\\bcase\\s+'(${names})'\\s*:`), // switch (c.architecture) { case 'qwen2': ... }
      /\[\s*[\w.?]*\barchitecture\s*\]/, // BUILDERS[c.architecture]
      /\barchitecture\s*\)?\s*\.(startsWith|endsWith|includes)\(|\.includes\(\s*[\w.?]*\barchitecture\s*\)/,
      /Record<\s*Architecture\s*,/, // a table per architecture
    ];
    const offending = files
      .filter((f) => !f.startsWith(ARCHS))
      .flatMap((f) =>
        readFileSync(join(ROOT, f), 'utf8')
          .split('\n')
          .flatMap((line, i) => (switches.some((s) => s.test(line)) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
      );
    expect(offending).toEqual([]);
  });

  it("src/engine/archs/ imports the graph as types only (the registry reads configs without the graph's code)", () => {
    const valueImports = files
      .filter((f) => f.startsWith(ARCHS))
      .flatMap((f) =>
        [...readFileSync(join(ROOT, f), 'utf8').matchAll(/(?:^|\n)\s*import\s+(?!type\b)[^'"]*?from\s+'([^']+)'/g)]
          .map((m) => relative(ROOT, normalize(join(ROOT, dirname(f), m[1]))))
          .filter((t) => t.startsWith('src/engine/graph/'))
          .map((t) => `${f} -> ${t}`),
      );
    expect(valueImports).toEqual([]);
  });
});
