import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AdapterRef } from '../../src/compute/adapter-cache.ts';
import { blobPath } from '../../src/compute/blob-source.ts';

/** A blob folder holding the files of the given adapter folders, and the refs the edge would send. */
export function blobFolder(adapters: Record<string, string>): { root: string; refs: Record<string, AdapterRef> } {
  const root = mkdtempSync(join(tmpdir(), 'versa-blobs-'));
  const refs: Record<string, AdapterRef> = {};
  for (const [id, dir] of Object.entries(adapters)) {
    const files = readdirSync(dir)
      .filter((name) => name.endsWith('.safetensors') || name === 'adapter_config.json')
      .map((name) => {
        const bytes = readFileSync(join(dir, name));
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        const path = join(root, blobPath(sha256));
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, bytes);
        return { name, sha256, bytes: bytes.length };
      });
    const weights = files.find((f) => f.name.endsWith('.safetensors'))!;
    refs[id] = { id, sha256: weights.sha256, files };
  }
  return { root, refs };
}

/** POSTs a generation to a compute node and reads its NDJSON stream. */
export async function generate(url: string, body: object, signal?: AbortSignal) {
  const res = await fetch(`${url}/v1/internal/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal,
  });
  if (!res.ok) return { status: res.status, headers: res.headers, error: (await res.json()).error, lines: [] as any[] };
  const text = await res.text();
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  return { status: res.status, headers: res.headers, lines, tokens: lines.filter((l) => l.type === 'token').map((l) => l.token), end: lines[lines.length - 1] };
}

/** Reads one metric's value from a Prometheus text page. */
export async function metric(url: string, name: string, labels = ''): Promise<number> {
  const page = await (await fetch(`${url}/metrics`)).text();
  const line = page.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
