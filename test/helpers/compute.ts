import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AdapterRef } from '../../src/protocol/compute.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { versionSha256 } from '../../src/compute/adapter-cache.ts';

/** The token the tests' compute nodes require (what VERSA_COMPUTE_TOKEN holds in production). */
export const COMPUTE_TOKEN = 'test-compute-token-0123456789';
export const AUTH = { authorization: `Bearer ${COMPUTE_TOKEN}` };

/** A blob store holding the files of the given adapter folders, and the refs the edge would send. */
export async function blobFolder(
  adapters: Record<string, string>,
): Promise<{ store: FolderBlobStore; refs: Record<string, AdapterRef> }> {
  const store = new FolderBlobStore(mkdtempSync(join(tmpdir(), 'versa-blobs-')));
  const refs: Record<string, AdapterRef> = {};
  for (const [id, dir] of Object.entries(adapters)) {
    const names = readdirSync(dir).filter((name) => name.endsWith('.safetensors') || name === 'adapter_config.json');
    const files = await Promise.all(
      names.map(async (name) => ({ name, ...(await store.put(new Uint8Array(readFileSync(join(dir, name))))) })),
    );
    const entries = files.map(({ name, sha256, bytes }) => ({ name, sha256, bytes }));
    refs[id] = { id, sha256: versionSha256(entries), files: entries };
  }
  return { store, refs };
}

/** POSTs a generation to a compute node and reads its NDJSON stream. */
export async function generate(url: string, body: object, signal?: AbortSignal) {
  const res = await fetch(`${url}/v1/internal/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...AUTH },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) return { status: res.status, headers: res.headers, error: (await res.json()).error, lines: [] as any[] };
  const text = await res.text();
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  return {
    status: res.status,
    headers: res.headers,
    lines,
    tokens: lines.filter((l) => l.type === 'token').map((l) => l.token),
    end: lines[lines.length - 1],
  };
}

/** Reads one metric's value from a Prometheus text page. */
export async function metric(url: string, name: string, labels = ''): Promise<number> {
  const page = await (await fetch(`${url}/metrics`, { headers: AUTH })).text();
  const line = page.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A port nothing listens on now (to start a server on, or to point at). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A compute node in its own process (`versa compute`), so that a test can stop, freeze or kill it: run
 * in place (no launcher, see bin/versa.js, even where the environment sets VERSA_HUGE_PAGES=1) unless
 * `env` says otherwise, so that the pid is the node's and a SIGSTOP, which a launcher cannot forward,
 * freezes it.
 */
export interface ComputeProcess {
  url: string;
  child: import('node:child_process').ChildProcess;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Resolves once the process has exited and its output is all read: its code, or the signal that ended it. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** SIGKILLs it if it still runs. */
  kill(): Promise<void>;
}

export async function spawnComputeNode(args: string[] = [], env: Record<string, string> = {}): Promise<ComputeProcess> {
  const { spawn } = await import('node:child_process');
  const { resolve } = await import('node:path');
  const { fixture } = await import('./fixtures.ts');
  const bin = resolve(import.meta.dirname, '../../bin/versa.js');
  const child = spawn(
    process.execPath,
    [bin, 'compute', '--model', fixture('stories260k/model.bin'), '--port', '0', '--threads', '1', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN, VERSA_HUGE_PAGES: '0', ...env },
    },
  );
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.on('close', (code, signal) => done({ code, signal })),
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((done, fail) => {
    child.stdout.on('data', (d) => done(String(d).trim()));
    void exited.then((code) => fail(new Error(`versa compute exited ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    exited,
    closed,
    stderr: () => stderr,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
