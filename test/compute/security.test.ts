import { createServer, request, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { AUTH, blobFolder, COMPUTE_TOKEN, freePort, generate } from '../helpers/compute.ts';
import { versa } from '../helpers/cli.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { createApiKey } from '../../registry/auth.ts';
import { startNodeServer } from '../../src/edge/server-node.ts';

/**
 * An HTTP listener on 127.0.0.1 that records every request it gets and answers 404 (or, as a
 * registry would, the scopes of a read key to `GET /v1/whoami` when `readKey` is set).
 */
async function listener(readKey?: string): Promise<{
  url: string;
  port: number;
  requests: Array<{ path: string; auth?: string }>;
  server: Server;
}> {
  const requests: Array<{ path: string; auth?: string }> = [];
  const server = createServer((req, res) => {
    requests.push({ path: req.url ?? '', auth: req.headers.authorization });
    if (readKey && req.url === '/v1/whoami' && req.headers.authorization === `Bearer ${readKey}`)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ scopes: ['read'] }));
    else res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, port, requests, server };
}

describe('compute tier: authentication, no request-chosen URLs, integrity', () => {
  let node: ComputeNode;
  let registry: Awaited<ReturnType<typeof listener>>;
  let blobs: Awaited<ReturnType<typeof blobFolder>>;
  beforeAll(async () => {
    registry = await listener('vsk_node-read-key');
    blobs = await blobFolder({ 'vlm-max@1': fixture('stories260k/adapters/vlm-max') });
    node = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 2,
      registry: registry.url,
      registryKey: 'vsk_node-read-key',
    });
  });
  afterAll(async () => {
    await node?.shutdown(1000);
    registry?.server.close();
  });

  it('every route but /healthz and /readyz needs the token (constant-time compared)', async () => {
    const routes: Array<[string, string]> = [
      ['POST', '/v1/internal/generate'],
      ['POST', '/v1/internal/tokenize'],
      ['POST', '/v1/internal/detokenize'],
      ['GET', '/v1/internal/info'],
      ['GET', '/metrics'],
      ['GET', '/no-such-route'],
    ];
    const body = JSON.stringify({ prompt: '', max_tokens: 1 });
    const refused: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: COMPUTE_TOKEN }, // no scheme
    ];
    for (const [method, path] of routes) {
      const send = (headers: Record<string, string>) =>
        fetch(`${node.url}${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          body: method === 'POST' ? body : undefined,
        });
      for (const headers of refused) {
        const res = await send(headers);
        expect(res.status, `${method} ${path} with ${JSON.stringify(headers)}`).toBe(401);
        expect((await res.json()).error.code).toBe('invalid_compute_token');
      }
      expect((await send(AUTH)).status, `${method} ${path} with the token`).not.toBe(401);
    }
    for (const path of ['/healthz', '/readyz']) expect((await fetch(`${node.url}${path}`)).status).toBe(200);
  });

  it('refuses to start without a token, in one line and before loading the model', async () => {
    await expect(startComputeNode({ token: '', model: '/nonexistent' })).rejects.toThrow(/needs a token/);
    await expect(startComputeNode({ token: 'short', model: '/nonexistent' })).rejects.toThrow(/at least 16/);
    const env = { VERSA_COMPUTE_TOKEN: '' };
    const r = await versa(['compute', '--model', fixture('stories260k/model.bin')], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /versa: error: a compute node needs a token: set VERSA_COMPUTE_TOKEN or give --token-file/,
    );
  });

  it('refuses a low-entropy token in one line, before loading the model', async () => {
    for (const token of ['a'.repeat(16), 'ab'.repeat(12), '0123456789012345', 'abcdefgabcdefgab'])
      await expect(startComputeNode({ token, model: '/nonexistent' }), token).rejects.toThrow(/too easy to guess/);
    const env = { VERSA_COMPUTE_TOKEN: 'x'.repeat(32) };
    const r = await versa(['compute', '--model', fixture('stories260k/model.bin')], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^versa: error: the compute token is too easy to guess \(1 distinct characters.*\n$/);
  });

  it('never fetches a URL a request names: a `url` is refused and the named listener hears nothing', async () => {
    const bait = await listener();
    try {
      const ref = blobs.refs['vlm-max@1'];
      const adapter = { ...ref, id: 'bait@1', files: ref.files.map((f) => ({ ...f, url: `${bait.url}/steal` })) };
      const r = await generate(node.url, { adapter, prompt: '', max_tokens: 1 });
      expect(r.status).toBe(400);
      expect(r.error.message).toMatch(/files\.0/);
      expect(bait.requests).toEqual([]);
    } finally {
      bait.server.close();
    }
  });

  it('reads adapter files from its configured registry only, with its own read key', async () => {
    registry.requests.length = 0;
    const ref = blobs.refs['vlm-max@1'];
    const r = await generate(node.url, { adapter: ref, prompt: '', max_tokens: 1 });
    expect(r.status).toBe(502); // the stand-in registry answers 404
    expect(r.error.message).not.toMatch(/127\.0\.0\.1|http:/); // no internal address in the error
    expect(registry.requests.map((q) => q.path).sort()).toEqual(
      ref.files.map((f) => `/v1/adapters/vlm-max/versions/1/files/${f.name}`).sort(),
    );
    expect(new Set(registry.requests.map((q) => q.auth))).toEqual(new Set(['Bearer vsk_node-read-key']));

    registry.requests.length = 0;
    for (const id of ['../../admin@1', 'a/b@1', 'x@1?y=', 'vlm-max@latest']) {
      const bad = await generate(node.url, { adapter: { ...ref, id }, prompt: '', max_tokens: 1 });
      expect(bad.status, id).toBeGreaterThanOrEqual(400);
    }
    expect(registry.requests).toEqual([]);
  });

  it('adapter labels in /metrics are bounded: 64 ids, then "other"', async () => {
    const ref = blobs.refs['vlm-max@1'];
    await Promise.all(
      Array.from({ length: 80 }, (_, i) =>
        generate(node.url, { adapter: { ...ref, id: `spam-${i}@1` }, prompt: '', max_tokens: 1 }),
      ),
    );
    const page = await (await fetch(`${node.url}/metrics`, { headers: AUTH })).text();
    const labels = new Set(
      [...page.matchAll(/versa_adapter_cache_misses_total\{adapter="([^"]+)"\}/g)].map((m) => m[1]),
    );
    expect(labels.size).toBeLessThanOrEqual(65);
    expect(labels.has('other')).toBe(true);
  });

  it("checks the version's sha256 against its files' manifest before caching anything", async () => {
    const ref = blobs.refs['vlm-max@1'];
    const forged = { ...ref, sha256: 'f'.repeat(64) };
    const r = await generate(node.url, { adapter: forged, prompt: '', max_tokens: 1 });
    expect(r.status).toBe(422);
    expect(r.error.message).toMatch(/manifest hashes to [0-9a-f]{64}, not the version's sha256 f{64}/);
    expect(node.state.cache.bytes).toBe(0);
  });
});

describe('compute node -> registry: a read-only key', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry('sqlite');
  });
  afterAll(() => registry?.close());

  it('refuses to start with an admin or publish key, before loading the model; a read key passes', async () => {
    const start = (registryKey: string) =>
      startComputeNode({ token: COMPUTE_TOKEN, model: '/nonexistent', registry: registry.url, registryKey });
    await expect(start(registry.adminKey)).rejects.toThrow(
      /^cannot use the registry key: it has the scopes? [a-z, ]*admin[a-z, ]*; a compute node takes a read-only key$/,
    );
    await expect(start(await registry.key('acme', ['read', 'publish']))).rejects.toThrow(/it has the scope publish;/);
    await expect(start('vsk_not-a-key-0000000000')).rejects.toThrow(
      /cannot use the registry key: the registry answered HTTP 401 to GET \/v1\/whoami/,
    );
    // A read key passes the check: what fails then is the model.
    await expect(start(await registry.key('acme', ['read']))).rejects.toThrow(/nonexistent/);
  });

  it('the key check follows no redirect either', async () => {
    const bait = await listener();
    const redirecting = createServer((_, res) => res.writeHead(307, { location: `${bait.url}/v1/whoami` }).end());
    await new Promise<void>((done) => redirecting.listen(0, '127.0.0.1', done));
    const { port } = redirecting.address() as { port: number };
    try {
      const start = startComputeNode({
        token: COMPUTE_TOKEN,
        model: '/nonexistent',
        registry: `http://127.0.0.1:${port}`,
        registryKey: 'vsk_node-read-key',
      });
      await expect(start).rejects.toThrow(/the registry answered a redirect \(HTTP 307\) .*: not followed/);
      expect(bait.requests).toEqual([]);
    } finally {
      bait.server.close();
      redirecting.close();
    }
  });
});

describe('edge -> compute: the token, and no URL from the Host header', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct();
  });
  afterAll(() => product?.close());

  it('a cold adapter is fetched from the configured registry whatever Host the client sends', async () => {
    const bait = await listener();
    try {
      const body = JSON.stringify({ model: 'vlm-max', prompt: 'Once', max_tokens: 2, temperature: 0 });
      const edge = new URL(product.registry.url);
      const status = await new Promise<number>((done, fail) => {
        const req = request(
          {
            host: edge.hostname,
            port: edge.port,
            path: '/v1/completions',
            method: 'POST',
            headers: {
              host: `127.0.0.1:${bait.port}`,
              authorization: `Bearer ${product.registry.adminKey}`,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => done(res.statusCode ?? 0));
          },
        );
        req.on('error', fail);
        req.end(body);
      });
      expect(status).toBe(200);
      expect(bait.requests).toEqual([]);
    } finally {
      bait.server.close();
    }
  });

  it('an experiment unit is at most 256 characters (x-versa-unit is stored with every event)', async () => {
    const res = await fetch(`${product.registry.url}/v1/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${product.registry.adminKey}`,
        'content-type': 'application/json',
        'x-versa-unit': 'u'.repeat(300),
      },
      body: JSON.stringify({ model: 'stories260k', prompt: 'x', max_tokens: 1 }),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: 'unit_too_long', param: 'user' });
  });

  it("a chat template is parsed when saved: a broken one is a 400 with the parser's message", async () => {
    const res = await fetch(`${product.registry.url}/v1/adapters/vlm-max`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${product.registry.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content ' }),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toMatch(/chat_template.*does not parse/);
  });

  it('unreachable nodes are reported without their addresses', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const other = await startProduct({ nodes: () => [dead] });
    try {
      const error = await other
        .openai()
        .completions.create({ model: 'stories260k', prompt: 'x', max_tokens: 1 })
        .catch((e: { status: number; message: string }) => e);
      expect((error as { status: number }).status).toBe(503);
      expect((error as { message: string }).message).not.toContain(dead.slice(7));
    } finally {
      await other.close();
    }
  });
});

describe('feedback integrity and per-key concurrency', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct({ generation: { concurrencyPerKey: 1 } });
  });
  afterAll(() => product?.close());

  it('scores are bounded; only the key that made a completion (or an admin) rates it', async () => {
    const { registry } = product;
    const other = await createApiKey(registry.registry, { tenant: 'acme', name: 'other', scopes: ['generate'] });
    const mine = await createApiKey(registry.registry, { tenant: 'acme', name: 'mine', scopes: ['generate'] });
    const completion = await product
      .openai(mine.key)
      .completions.create({ model: 'stories260k', prompt: 'x', max_tokens: 1 });
    const rate = (key: string, score: number) =>
      fetch(`${registry.url}/v1/feedback`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ completion_id: completion.id, score }),
      });
    expect((await rate(mine.key, 1e308)).status).toBe(400);
    expect((await rate(other.key, 1)).status).toBe(403);
    expect((await rate(mine.key, 1)).status).toBe(201);
    expect((await rate(registry.adminKey, 0)).status).toBe(201);
  });

  it('a key over its concurrent generations gets 429 with Retry-After, and its slot comes back', async () => {
    const openai = product.openai();
    const stream = await openai.completions.create({
      model: 'stories260k',
      prompt: 'x',
      max_tokens: 200,
      stream: true,
    });
    const busy = await fetch(`${product.registry.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${product.registry.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260k', prompt: 'x', max_tokens: 1 }),
    });
    expect(busy.status).toBe(429);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect((await busy.json()).error.code).toBe('too_many_concurrent_requests');
    for await (const _ of stream) void _;
    const after = await openai.completions.create({ model: 'stories260k', prompt: 'x', max_tokens: 1 });
    expect(after.choices).toHaveLength(1);
  });
});

describe('idle connections', () => {
  it('the Node edge closes a connection that stops sending mid-upload', async () => {
    const key = 'vsk_idle-test-admin-key-000000000000';
    const home = mkdtempSync(join(tmpdir(), 'versa-idle-'));
    const edge = await startNodeServer({ port: 0, home, apiKey: key, idleTimeoutMs: 300 });
    try {
      const socket = connect(edge.port, '127.0.0.1');
      await new Promise<void>((done) => socket.once('connect', () => done()));
      socket.write(
        `POST /v1/adapters/x/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
          'Content-Type: multipart/form-data; boundary=z\r\nContent-Length: 100000\r\n\r\n--z\r\n',
      );
      const closed = await new Promise<boolean>((done) => {
        socket.once('close', () => done(true));
        setTimeout(() => done(false), 3000); // the keep-alive timeout would be 5 s
      });
      expect(closed).toBe(true);
    } finally {
      await edge.close();
    }
  });
});
