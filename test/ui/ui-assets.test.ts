import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { buildAssets, CLIENT_DIR, GENERATED_FILE, generatedModule } from '../../scripts/generate-ui-assets.ts';
import { CLIENT_ASSETS } from '../../src/edge/ui/assets.generated.ts';

/**
 * The dashboard is written in src/edge/ui/client/ and served from src/edge/ui/assets.generated.ts, which
 * scripts/generate-ui-assets.ts writes from it (`npm run ui:assets`). These keep the two in step.
 */
describe('dashboard assets', () => {
  it('the generated module is what `npm run ui:assets` writes from src/edge/ui/client/', () => {
    const stale = 'src/edge/ui/assets.generated.ts is out of date with src/edge/ui/client/: run `npm run ui:assets`';
    expect(readFileSync(GENERATED_FILE, 'utf8'), stale).toBe(generatedModule());
  });

  it('the served strings are the built files, byte for byte', () => {
    const built = buildAssets();
    expect(Object.keys(CLIENT_ASSETS).sort()).toEqual(Object.keys(built).sort());
    for (const [name, body] of Object.entries(built)) expect(CLIENT_ASSETS[name], name).toBe(body);
    // CSS is served as written.
    expect(CLIENT_ASSETS['styles.css']).toBe(readFileSync(join(CLIENT_DIR, 'styles.css'), 'utf8'));
  });

  it('tsc checks the sources, against the DOM library (npm test runs tsc --noEmit with tsconfig.json)', () => {
    const root = join(import.meta.dirname, '../..');
    const fail = (d: ts.Diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, ' '));
    };
    const config = ts.getParsedCommandLineOfConfigFile(
      join(root, 'tsconfig.json'),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: fail,
      },
    )!;
    const sources = readdirSync(CLIENT_DIR)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(CLIENT_DIR, f));
    expect(sources.length).toBeGreaterThan(5);
    for (const file of sources) expect(config.fileNames, file).toContain(file);
    expect(config.options.strict).toBe(true);
    expect(config.options.lib).toContain('lib.dom.d.ts');
  });
});
