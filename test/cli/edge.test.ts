import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importLocalModel } from '../../registry/local.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { openLocalRegistry } from '../../src/edge/server-node.ts';
import { versa } from '../helpers/cli.ts';
import { until } from '../helpers/experiments.ts';
import { COMPUTE_TOKEN } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';

/** `versa edge`: the Node edge alone, over a VERSA_HOME registry, in front of compute nodes. */
describe('versa edge', () => {
  let compute: ComputeNode;
  let home: string;
  const key = `vsk_edge-${crypto.randomUUID()}`;
  beforeAll(async () => {
    compute = await startComputeNode({ token: COMPUTE_TOKEN, model: fixture('stories260k/model.bin'), threads: 2 });
    home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const { registry } = openLocalRegistry(home);
    await importLocalModel(registry, { path: fixture('stories260k/model.bin'), name: 'stories260k' });
    registry.close();
  });
  afterAll(() => compute?.shutdown(1000));

  const env = (extra: Record<string, string> = {}) => ({
    VERSA_HOME: home,
    VERSA_API_KEY: key,
    VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN,
    COMPUTE_NODES: JSON.stringify([compute.url]),
    ...extra,
  });

  it('serves the registry in VERSA_HOME and generates on the compute nodes; /healthz needs no key', async () => {
    const child = spawn(process.execPath, [resolve(import.meta.dirname, '../../bin/versa.js'), 'edge', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env() },
    });
    const exited = new Promise<number | null>((done) => child.on('exit', done));
    try {
      const url = await new Promise<string>((done, fail) => {
        child.stdout.on('data', (d) => done(String(d).trim()));
        void exited.then((code) => fail(new Error(`versa edge exited ${code}`)));
      });
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect((await health.json()).status).toBe('ok');
      const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
      const res = await openai.completions.create({ model: 'stories260k', prompt: 'Once', max_tokens: 5 });
      expect(res.usage?.completion_tokens).toBe(5);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('sends the first token while its usage event waits on a locked database, then writes the event', async () => {
    const child = spawn(process.execPath, [resolve(import.meta.dirname, '../../bin/versa.js'), 'edge', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env() },
    });
    const exited = new Promise<number | null>((done) => child.on('exit', done));
    // Another writer holds the registry's write lock: the edge's event write must wait for it (SQLite
    // blocks its event loop while it does), so it must come after the stream's first token.
    const db = new Database(join(home, 'registry.db'));
    try {
      const url = await new Promise<string>((done, fail) => {
        child.stdout.on('data', (d) => done(String(d).trim()));
        void exited.then((code) => fail(new Error(`versa edge exited ${code}`)));
      });
      db.prepare('BEGIN IMMEDIATE').run();
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260k', prompt: 'Once', max_tokens: 1, temperature: 0, stream: true }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const firstToken = (async () => {
        while (!text.includes('"text":')) {
          const r = await reader.read();
          if (r.done) return false;
          text += r.value;
        }
        return true;
      })();
      const waited = new Promise<'still locked'>((done) => setTimeout(() => done('still locked'), 3000));
      const first = await Promise.race([firstToken, waited]);
      db.prepare('COMMIT').run();
      expect(first).toBe(true);
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
      expect(text).toContain('data: [DONE]');
      const id = /"id":"([^"]+)"/.exec(text)![1];
      const usage = db.prepare("SELECT count(*) AS n FROM events WHERE type = 'usage' AND completion_id = ?");
      await until(async () => (usage.get(id) as { n: number }).n === 1);
    } finally {
      if (db.inTransaction) db.prepare('COMMIT').run();
      db.close();
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses a missing token, bad COMPUTE_NODES, a bad timeout or a port in use in one line', async () => {
    const missing = await versa(['edge', '--port', '0'], { env: env({ VERSA_COMPUTE_TOKEN: '' }) });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^versa: error: set VERSA_COMPUTE_TOKEN .*\n$/);

    for (const nodes of ['["http://a:1"', '["ftp://a:1"]', '[42]', '{"stories260k": ["not a url"]}']) {
      const bad = await versa(['edge', '--port', '0'], { env: env({ COMPUTE_NODES: nodes }) });
      expect(bad.code, nodes).toBe(1);
      expect(bad.stderr, nodes).toMatch(/^versa: error: COMPUTE_NODES.*\n$/);
    }

    const timeout = await versa(['edge', '--port', '0'], { env: env({ VERSA_NODE_IDLE_TIMEOUT: 'soon' }) });
    expect(timeout.code).toBe(1);
    expect(timeout.stderr).toBe(
      'versa: error: VERSA_NODE_IDLE_TIMEOUT must be a number of seconds above 0, not "soon"\n',
    );

    const taken: Server = createServer();
    await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
    try {
      const port = String((taken.address() as { port: number }).port);
      const busy = await versa(['edge', '--port', port], { env: env() });
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(new RegExp(`^versa: error: port ${port} is already in use.*\\n$`));
    } finally {
      taken.close();
    }
  });
});
