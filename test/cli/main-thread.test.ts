import { resolve } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(import.meta.dirname, '../..');

/** The packages a module loads as it is imported: those of its static imports, followed through the tree. */
async function packagesLoadedBy(entry: string): Promise<Set<string>> {
  const { metafile } = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: [entry],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'silent',
  });
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const i of metafile.inputs[file].imports) {
      if (i.kind !== 'import-statement') continue; // a dynamic import loads later, when it runs
      if (i.external) packages.add(i.path);
      else visit(i.path);
    }
  };
  visit(entry);
  return packages;
}

/**
 * A command that runs a model starts its engine's thread as soon as it can; what its main thread
 * imports first delays that (onnxruntime and the ONNX protobufs: about 0.05 s of a 1 s start).
 */
describe('the main thread of the model commands', () => {
  it.each(['generate', 'compute', 'start', 'edge'])(
    '`versa %s` imports no onnxruntime there (the engine thread does)',
    async (command) => {
      const packages = await packagesLoadedBy(`src/cli/commands/${command}.ts`);
      expect(packages.size).toBeGreaterThan(0);
      expect([...packages]).not.toContain('onnxruntime-node');
      expect([...packages]).not.toContain('onnx-proto');
    },
  );
});
