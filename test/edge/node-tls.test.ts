import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importLocalModel } from '../../registry/local.ts';
import { isPrivateHost, parseComputeNodes } from '../../src/edge/routing/pools.ts';
import { openLocalRegistry } from '../../src/edge/server-node.ts';
import { versa } from '../helpers/cli.ts';
import { COMPUTE_TOKEN, spawnComputeNode, type ComputeProcess } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';

/**
 * Issue #19 N6: the compute token travels encrypted. A node serves HTTPS with a given certificate
 * (a real self-signed one, made here with openssl); `versa edge` reaches it over https when it
 * trusts that certificate (NODE_EXTRA_CA_CERTS, read at process start), and not when it does not.
 * Plain http is refused to public addresses unless VERSA_ALLOW_PLAINTEXT_NODES=1.
 */
describe('TLS between the edge and its compute nodes', () => {
  let node: ComputeProcess;
  let home: string;
  let cert: string;
  const key = `vsk_tls-${crypto.randomUUID()}`;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-tls-'));
    cert = join(dir, 'cert.pem');
    const certKey = join(dir, 'key.pem');
    execFileSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      certKey,
      '-out',
      cert,
    ]);
    node = await spawnComputeNode(['--name', 'stories260k', '--tls-cert', cert, '--tls-key', certKey]);
    home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const { registry } = openLocalRegistry(home);
    await importLocalModel(registry, { path: fixture('stories260k/model.bin'), name: 'stories260k' });
    registry.close();
  }, 60_000);
  afterAll(() => node?.kill());

  /** `versa edge` in front of the https node; its URL once it listens, and a way to stop it. */
  async function edge(env: Record<string, string>) {
    const bin = resolve(import.meta.dirname, '../../bin/versa.js');
    const child = spawn(process.execPath, [bin, 'edge', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        VERSA_HOME: home,
        VERSA_API_KEY: key,
        VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN,
        COMPUTE_NODES: JSON.stringify([node.url]),
        NODE_EXTRA_CA_CERTS: '',
        ...env,
      },
    });
    const exited = new Promise<number | null>((done) => child.on('exit', done));
    const url = await new Promise<string>((done, fail) => {
      child.stdout.on('data', (d) => done(String(d).trim()));
      void exited.then((code) => fail(new Error(`versa edge exited ${code}`)));
    });
    return { url, stop: () => (child.kill('SIGTERM'), exited) };
  }

  it('a node serves https with the given certificate; an edge that trusts it generates there', async () => {
    expect(node.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const trusting = await edge({ NODE_EXTRA_CA_CERTS: cert });
    try {
      const openai = new OpenAI({ baseURL: `${trusting.url}/v1`, apiKey: key, maxRetries: 0 });
      const res = await openai.completions.create({ model: 'stories260k', prompt: 'Once', max_tokens: 3 });
      expect(res.usage?.completion_tokens).toBe(3);
    } finally {
      expect(await trusting.stop()).toBe(0);
    }
  });

  it('an edge that does not trust the certificate sends nothing to the node: 503', async () => {
    const wary = await edge({});
    try {
      const res = await fetch(`${wary.url}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260k', prompt: 'Once', max_tokens: 3 }),
      });
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('no_node_for_base');
    } finally {
      await wary.stop();
    }
  });

  it('plain http to a public address is refused at start, in one line, unless allowed', async () => {
    const refused = await versa(['edge', '--port', '0'], {
      env: {
        VERSA_HOME: home,
        VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN,
        COMPUTE_NODES: '["http://203.0.113.7:8788"]',
      },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^versa: error: COMPUTE_NODES: http:\/\/203\.0\.113\.7:8788 is plain http to a public/,
    );
    expect(refused.stderr).toMatch(/VERSA_ALLOW_PLAINTEXT_NODES=1\n$/);
    expect(refused.stderr.split('\n')).toHaveLength(2); // one line
    const env = (COMPUTE_NODES: string, allow = '') => ({ COMPUTE_NODES, VERSA_ALLOW_PLAINTEXT_NODES: allow });
    expect(parseComputeNodes(env('["http://203.0.113.7:8788"]', '1'))).toEqual({ '*': ['http://203.0.113.7:8788'] });
    expect(parseComputeNodes(env('https://compute.example.com'))).toEqual({ '*': ['https://compute.example.com'] });
    expect(() => parseComputeNodes(env('{"qwen": ["http://compute.example.com:8788"]}'))).toThrow(/plain http/);
  });

  it('versa compute refuses half a TLS pair or a bad --name in one line, before loading the model', async () => {
    const env = { VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN };
    const model = fixture('stories260k/model.bin');
    const half = await versa(['compute', '--model', model, '--port', '0', '--tls-cert', cert], { env });
    expect(half.code).toBe(1);
    expect(half.stderr).toBe('versa: error: --tls-cert and --tls-key go together\n');
    const name = await versa(['compute', '--model', model, '--port', '0', '--name', 'a b@x'], { env });
    expect(name.code).toBe(1);
    expect(name.stderr).toMatch(/--name.*expected NAME or NAME@VERSION/);
  });

  it('loopback, private and internal names count as private; public ones do not', () => {
    for (const host of ['127.0.0.1', 'localhost', '10.0.0.2', '172.20.1.1', '192.168.1.9', '[::1]', '[fd00::2]'])
      expect(isPrivateHost(host), host).toBe(true);
    for (const host of ['compute', 'node-1.internal', 'gpu.local', '169.254.10.1', '100.100.1.1'])
      expect(isPrivateHost(host), host).toBe(true);
    for (const host of ['203.0.113.7', '8.8.8.8', '172.32.0.1', 'compute.example.com', '[2001:db8::1]'])
      expect(isPrivateHost(host), host).toBe(false);
  });
});
