import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../registry/auth.ts';
import type { Scope } from '../../src/http/principal.ts';
import { errorOf, publish, publishForm, published, registerBase, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * The auth matrix: every route x every scope x another tenant's key x no key (and a bogus key).
 * All resources belong to tenant "acme"; "rival" holds read+generate+publish. A private adapter is
 * invisible (404, never 403) to other tenants; a public one is readable but not writable (403).
 * "admin" is acme's tenant admin; "operator" (the test registry's own key) acts across tenants.
 */

type Who = 'none' | 'bogus' | 'read' | 'generate' | 'publish' | 'admin' | 'operator' | 'rival';
const WHO: Who[] = ['none', 'bogus', 'read', 'generate', 'publish', 'admin', 'operator', 'rival'];
const RIVAL_SCOPES: Scope[] = ['read', 'generate', 'publish'];

interface Ctx {
  reg: TestRegistry;
  experiment: string;
  n: number;
}

interface RouteCase {
  route: string;
  /** Scopes that grant access (operator always does, admin all but operator); [] = any valid key. */
  scopes: Scope[];
  ok: number;
  /** What the rival tenant's key gets. */
  rival: number;
  send: (ctx: Ctx, key: string | null) => Promise<Response>;
}

const config = toyConfig();
const body = (method: string, value: unknown) => ({
  method,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(value),
});

const routes: RouteCase[] = [
  {
    route: 'GET /v1/models',
    scopes: ['read', 'generate'],
    ok: 200,
    rival: 200,
    send: (c, key) => c.reg.fetch('/v1/models', { key }),
  },
  {
    route: 'POST /v1/models',
    scopes: ['publish'],
    ok: 201,
    rival: 201,
    send: (c, key) => c.reg.fetch('/v1/models', { ...body('POST', { name: `m-${c.n++}` }), key }),
  },
  {
    route: 'GET /v1/models/{model}',
    scopes: ['read', 'generate'],
    ok: 200,
    rival: 200,
    send: (c, key) => c.reg.fetch('/v1/models/toy', { key }),
  },
  {
    route: 'POST /v1/models/{model}/versions',
    scopes: ['publish'],
    ok: 201,
    rival: 403,
    send: (c, key) =>
      c.reg.fetch('/v1/models/toy/versions', { ...body('POST', { architecture: 'gpt2', config, files: [] }), key }),
  },
  {
    route: 'GET /v1/models/{model}/versions',
    scopes: ['read', 'generate'],
    ok: 200,
    rival: 200,
    send: (c, key) => c.reg.fetch('/v1/models/toy/versions?limit=1', { key }),
  },
  {
    route: 'PATCH /v1/models/{model}/versions/{version}',
    scopes: ['publish'],
    ok: 200,
    rival: 403,
    send: (c, key) => c.reg.fetch('/v1/models/toy/versions/1', { ...body('PATCH', { status: 'active' }), key }),
  },
  {
    route: 'GET /v1/models/{model}/versions/{version}',
    scopes: ['read', 'generate'],
    ok: 200,
    rival: 200,
    send: (c, key) => c.reg.fetch('/v1/models/toy/versions/1', { key }),
  },
  {
    route: 'GET /v1/adapters',
    scopes: ['read'],
    ok: 200,
    rival: 200,
    send: (c, key) => c.reg.fetch('/v1/adapters', { key }),
  },
  {
    route: 'GET /v1/adapters/{adapter}',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret', { key }),
  },
  {
    route: 'PATCH /v1/adapters/{adapter}',
    scopes: ['publish'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret', { ...body('PATCH', { task: 'qa' }), key }),
  },
  {
    route: 'GET /v1/adapters/{adapter}/versions',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/versions', { key }),
  },
  {
    route: 'POST /v1/adapters/{adapter}/versions',
    scopes: ['publish'],
    ok: 201,
    rival: 404,
    send: (c, key) =>
      c.reg.fetch('/v1/adapters/secret/versions', {
        method: 'POST',
        body: publishForm({ base: 'toy@1' }, vlmAdapter(config, { seed: c.n++ })),
        key,
      }),
  },
  {
    route: 'GET /v1/adapters/{adapter}/versions/{version}',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/versions/1', { key }),
  },
  {
    route: 'PATCH /v1/adapters/{adapter}/versions/{version}',
    scopes: ['publish'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/versions/1', { ...body('PATCH', { status: 'active' }), key }),
  },
  {
    route: 'GET /v1/adapters/{adapter}/versions/{version}/files/{name}',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/versions/1/files/adapter.safetensors', { key }),
  },
  {
    route: 'GET /v1/resolve',
    scopes: ['read', 'generate'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/resolve?model=secret@production', { key }),
  },
  {
    route: 'GET /v1/adapters/{adapter}/aliases',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/aliases', { key }),
  },
  {
    route: 'GET /v1/adapters/{adapter}/aliases/{alias}',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/aliases/production', { key }),
  },
  {
    route: 'PUT /v1/adapters/{adapter}/aliases/{alias}',
    scopes: ['publish'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/aliases/production', { ...body('PUT', { version: 1 }), key }),
  },
  {
    route: 'POST /v1/adapters/{adapter}/aliases/{alias}/rollback',
    scopes: ['publish'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/aliases/production/rollback', { method: 'POST', key }),
  },
  {
    route: 'GET /v1/adapters/{adapter}/aliases/{alias}/history',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/adapters/secret/aliases/production/history', { key }),
  },
  {
    route: 'POST /v1/experiments',
    scopes: ['publish'],
    ok: 201,
    rival: 404,
    send: (c, key) =>
      c.reg.fetch('/v1/experiments', {
        ...body('POST', { name: 'e', adapter: 'secret', arms: [{ version: 1, weight: 1 }] }),
        key,
      }),
  },
  {
    route: 'GET /v1/experiments',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/experiments?adapter=secret', { key }),
  },
  {
    route: 'GET /v1/experiments/{id}',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch(`/v1/experiments/${c.experiment}`, { key }),
  },
  {
    route: 'PATCH /v1/experiments/{id}',
    scopes: ['publish'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch(`/v1/experiments/${c.experiment}`, { ...body('PATCH', { name: 'renamed' }), key }),
  },
  {
    route: 'POST /v1/tenants',
    scopes: ['operator'],
    ok: 201,
    rival: 403,
    send: (c, key) => c.reg.fetch('/v1/tenants', { ...body('POST', { id: `t-${c.n++}` }), key }),
  },
  {
    route: 'PATCH /v1/tenants/{id}',
    scopes: ['operator'],
    ok: 200,
    rival: 403,
    send: (c, key) => c.reg.fetch('/v1/tenants/rival', { ...body('PATCH', { max_adapter_fraction: 0.1 }), key }),
  },
  {
    route: 'GET /v1/tenants',
    scopes: ['operator'],
    ok: 200,
    rival: 403,
    send: (c, key) => c.reg.fetch('/v1/tenants', { key }),
  },
  {
    route: 'POST /v1/keys',
    scopes: ['admin'],
    ok: 201,
    rival: 403,
    send: (c, key) => c.reg.fetch('/v1/keys', { ...body('POST', { tenant: 'acme', scopes: ['read'] }), key }),
  },
  { route: 'GET /v1/keys', scopes: ['admin'], ok: 200, rival: 403, send: (c, key) => c.reg.fetch('/v1/keys', { key }) },
  {
    route: 'DELETE /v1/keys/{id}',
    scopes: ['admin'],
    ok: 200,
    rival: 403,
    send: async (c, key) => {
      const victim = await createApiKey(c.reg.registry, { tenant: 'acme', scopes: ['read'] });
      return c.reg.fetch(`/v1/keys/${victim.id}`, { method: 'DELETE', key });
    },
  },
  { route: 'GET /v1/whoami', scopes: [], ok: 200, rival: 200, send: (c, key) => c.reg.fetch('/v1/whoami', { key }) },
  // Generation: this registry has no compute node, so a request that passes auth and resolution gets 503.
  {
    route: 'POST /v1/chat/completions',
    scopes: ['generate'],
    ok: 503,
    rival: 404,
    send: (c, key) =>
      c.reg.fetch('/v1/chat/completions', {
        ...body('POST', { model: 'secret', messages: [{ role: 'user', content: 'hi' }] }),
        key,
      }),
  },
  {
    route: 'POST /v1/completions',
    scopes: ['generate'],
    ok: 503,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/completions', { ...body('POST', { model: 'secret@1', prompt: 'hi' }), key }),
  },
  {
    route: 'POST /v1/tokenize',
    scopes: ['generate'],
    ok: 503,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/tokenize', { ...body('POST', { model: 'secret@1', prompt: 'hi' }), key }),
  },
  {
    route: 'POST /v1/detokenize',
    scopes: ['generate'],
    ok: 503,
    rival: 404,
    send: (c, key) => c.reg.fetch('/v1/detokenize', { ...body('POST', { model: 'secret@1', tokens: [1] }), key }),
  },
  {
    route: 'POST /v1/feedback',
    scopes: ['generate'],
    ok: 404,
    rival: 404,
    send: (c, key) =>
      c.reg.fetch('/v1/feedback', { ...body('POST', { completion_id: 'chatcmpl-unknown', score: 1 }), key }),
  },
  {
    route: 'GET /v1/experiments/{id}/results',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch(`/v1/experiments/${c.experiment}/results`, { key }),
  },
  {
    route: 'GET /v1/experiments/{id}/history',
    scopes: ['read'],
    ok: 200,
    rival: 404,
    send: (c, key) => c.reg.fetch(`/v1/experiments/${c.experiment}/history`, { key }),
  },
  // A draft experiment: promotion is refused once authorized.
  {
    route: 'POST /v1/experiments/{id}/promote',
    scopes: ['publish'],
    ok: 409,
    rival: 404,
    send: (c, key) => c.reg.fetch(`/v1/experiments/${c.experiment}/promote`, { ...body('POST', { arm: 'v1' }), key }),
  },
  {
    route: 'POST /v1/experiments/{id}/metrics',
    scopes: ['generate'],
    ok: 202,
    rival: 404,
    send: (c, key) =>
      c.reg.fetch(`/v1/experiments/${c.experiment}/metrics`, {
        ...body('POST', { events: [{ unit: 'u', metric: 'score', value: 1 }] }),
        key,
      }),
  },
  {
    route: 'GET /v1/stats',
    scopes: ['operator'],
    ok: 200,
    rival: 403,
    send: (c, key) => c.reg.fetch('/v1/stats', { key }),
  },
];

function expected(route: RouteCase, who: Who): number {
  if (who === 'none' || who === 'bogus') return 401;
  if (who === 'rival')
    return route.scopes.length && !route.scopes.some((s) => RIVAL_SCOPES.includes(s)) ? 403 : route.rival;
  if (who === 'operator' || !route.scopes.length || route.scopes.includes(who)) return route.ok;
  if (who === 'admin') return route.scopes.includes('operator') ? 403 : route.ok;
  return 403;
}

describe.each(BACKENDS)('auth matrix (%s)', (backend) => {
  let ctx: Ctx;
  const keys = {} as Record<Who, string | null>;

  beforeAll(async () => {
    const reg = await startRegistry(backend);
    keys.none = null;
    keys.bogus = 'vsk_thisKeyWasNeverIssuedToAnyone0000000000';
    keys.operator = reg.adminKey;
    for (const s of ['read', 'generate', 'publish', 'admin'] as const) keys[s] = await reg.key('acme', [s]);
    keys.rival = await reg.key('rival', RIVAL_SCOPES);
    await registerBase(reg, 'toy');
    await published(reg, 'secret', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 1 }));
    await published(reg, 'secret', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 2 }));
    await published(
      reg,
      'shared',
      { base: 'toy@1', alias: 'production', visibility: 'public' },
      vlmAdapter(config, { seed: 3 }),
    );
    const exp = await reg.fetch(
      '/v1/experiments',
      body('POST', { name: 'ab', adapter: 'secret', arms: [{ version: 1, weight: 1 }] }),
    );
    ctx = { reg, experiment: (await exp.json()).id, n: 100 };
  });
  afterAll(() => ctx?.reg.close());

  it.each(routes)('$route', async (route) => {
    const wrong: string[] = [];
    for (const who of WHO) {
      const res = await route.send(ctx, keys[who]);
      const want = expected(route, who);
      if (res.status !== want)
        wrong.push(`${who}: ${res.status} (want ${want}) ${await res.text().then((t) => t.slice(0, 160))}`);
      else if ([401, 403, 404].includes(res.status)) {
        const err = await errorOf(res);
        expect(err.type).toBe(
          { 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error' }[res.status],
        );
      } else await res.arrayBuffer();
    }
    expect(wrong).toEqual([]);
  });

  it('every route in the OpenAPI document is in the matrix', async () => {
    const doc = await (await fetch(`${ctx.reg.url}/openapi.json`)).json();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(routes.map((r) => r.route).sort());
    for (const ops of Object.values(doc.paths as Record<string, Record<string, { security?: unknown }>>)) {
      for (const op of Object.values(ops)) expect(op.security).toEqual([{ bearer: [] }]);
    }
  });

  it('a private adapter is invisible to other tenants, everywhere', async () => {
    const { reg } = ctx;
    const listed = await (await reg.fetch('/v1/adapters', { key: keys.rival })).json();
    expect(listed.data.map((a: { name: string }) => a.name)).toEqual(['shared']);
    const models = await (await reg.fetch('/v1/models', { key: keys.rival })).json();
    const ids = models.data.map((m: { id: string }) => m.id);
    expect(ids).toContain('shared@production');
    expect(ids.filter((id: string) => id.startsWith('secret'))).toEqual([]);
    expect((await reg.fetch('/v1/adapters?q=secret', { key: keys.rival }).then((r) => r.json())).data).toEqual([]);
    // Publishing under the taken name reveals nothing either.
    expect((await publish(reg, 'secret', { base: 'toy@1' }, vlmAdapter(config), keys.rival)).status).toBe(404);
  });

  it('a public adapter is readable by other tenants but not writable (403)', async () => {
    const { reg } = ctx;
    expect((await reg.fetch('/v1/adapters/shared', { key: keys.rival })).status).toBe(200);
    expect((await reg.fetch('/v1/resolve?model=shared', { key: keys.rival })).status).toBe(200);
    const dl = await reg.fetch('/v1/adapters/shared/versions/1/files/adapter.safetensors', { key: keys.rival });
    expect(dl.status).toBe(200);
    await dl.arrayBuffer();
    expect((await reg.fetch('/v1/adapters/shared', { ...body('PATCH', { task: 'x' }), key: keys.rival })).status).toBe(
      403,
    );
    expect(
      (await reg.fetch('/v1/adapters/shared/aliases/production', { ...body('PUT', { version: 1 }), key: keys.rival }))
        .status,
    ).toBe(403);
    expect(
      (await reg.fetch('/v1/adapters/shared/versions/1', { ...body('PATCH', { status: 'yanked' }), key: keys.rival }))
        .status,
    ).toBe(403);
    expect((await publish(reg, 'shared', { base: 'toy@1' }, vlmAdapter(config), keys.rival)).status).toBe(403);
    expect(
      (
        await reg.fetch('/v1/experiments', {
          ...body('POST', { name: 'x', adapter: 'shared', arms: [{ version: 1, weight: 1 }] }),
          key: keys.rival,
        })
      ).status,
    ).toBe(403);
  });

  it("each tenant owns what it publishes; the operator sees every tenant's, a tenant's admin does not", async () => {
    const { reg } = ctx;
    const mine = await published(reg, 'rivals-own', { base: 'toy@1' }, vlmAdapter(config, { seed: 9 }), keys.rival);
    expect(mine.version).toBe(1);
    expect((await reg.fetch('/v1/adapters/rivals-own', { key: keys.read })).status).toBe(404);
    expect((await reg.fetch('/v1/adapters/rivals-own', { key: keys.admin })).status).toBe(404);
    expect((await reg.fetch('/v1/adapters/rivals-own', { key: keys.operator })).status).toBe(200);
    expect((await (await reg.fetch('/v1/adapters/rivals-own', { key: keys.rival })).json()).owner).toBe('rival');
  });

  it("a tenant's admin manages its own tenant's keys only, and learns nothing about another's", async () => {
    const { reg } = ctx;
    const asAdmin = (path: string, init: RequestInit = {}) => reg.fetch(path, { ...init, key: keys.admin });
    const rivalKeys = async () => (await (await reg.fetch('/v1/keys?tenant=rival')).json()).data as { id: string }[];
    const before = await rivalKeys();
    const rivalKeyId = before[0].id;

    // Listing: its own tenant's keys, never another's (the same 403 whether that tenant exists or not).
    const own = await (await asAdmin('/v1/keys')).json();
    expect(new Set(own.data.map((k: { tenant: string }) => k.tenant))).toEqual(new Set(['acme']));
    for (const tenant of ['rival', 'no-such-tenant']) {
      expect(await errorOf(await asAdmin(`/v1/keys?tenant=${tenant}`))).toMatchObject({
        status: 403,
        code: 'other_tenant',
      });
    }
    // Minting: for its own tenant (the default), never for another one, never an operator key.
    const minted = await asAdmin('/v1/keys', body('POST', { name: 'ci', scopes: ['read'] }));
    expect(minted.status).toBe(201);
    expect((await minted.json()).tenant).toBe('acme');
    for (const tenant of ['rival', 'no-such-tenant']) {
      const res = await asAdmin('/v1/keys', body('POST', { tenant, scopes: ['admin'] }));
      expect(await errorOf(res)).toMatchObject({ status: 403, code: 'other_tenant' });
    }
    const escalate = await asAdmin('/v1/keys', body('POST', { scopes: ['operator'] }));
    expect(await errorOf(escalate)).toMatchObject({ status: 403, code: 'insufficient_scope' });
    expect(await rivalKeys()).toEqual(before);
    // Revoking: another tenant's key and the operator's own key answer like a key that does not exist.
    const operatorId = (await (await reg.fetch('/v1/whoami')).json()).key_id;
    for (const id of [rivalKeyId, operatorId, 'key_doesnotexist']) {
      const res = await asAdmin(`/v1/keys/${id}`, { method: 'DELETE' });
      expect(await errorOf(res)).toMatchObject({ status: 404, code: 'key_not_found' });
    }
    expect((await reg.fetch('/v1/whoami', { key: keys.rival })).status).toBe(200);
    // Tenants are the operator's.
    expect((await asAdmin('/v1/tenants')).status).toBe(403);
    expect((await asAdmin('/v1/tenants', body('POST', { id: 'acme-2' }))).status).toBe(403);
    expect((await asAdmin('/v1/tenants/acme', body('PATCH', { max_adapter_fraction: 5 }))).status).toBe(403);

    // The operator does all of it.
    const forRival = await reg.fetch('/v1/keys', body('POST', { tenant: 'rival', name: 'op-made', scopes: ['read'] }));
    expect(forRival.status).toBe(201);
    const made = await forRival.json();
    expect((await reg.fetch(`/v1/keys/${made.id}`, { method: 'DELETE' })).status).toBe(200);
    expect((await reg.fetch('/v1/whoami', { key: made.key })).status).toBe(401);
  });

  it('a revoked key gets 401', async () => {
    const { reg } = ctx;
    const k = await createApiKey(reg.registry, { tenant: 'acme', scopes: ['read'] });
    expect((await reg.fetch('/v1/whoami', { key: k.key })).status).toBe(200);
    expect((await reg.fetch(`/v1/keys/${k.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await errorOf(await reg.fetch('/v1/whoami', { key: k.key }))).toMatchObject({
      status: 401,
      code: 'invalid_api_key',
    });
    const listed = await (await reg.fetch('/v1/keys?tenant=acme')).json();
    const entry = listed.data.find((x: { id: string }) => x.id === k.id);
    expect(entry.revoked_at).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(k.key);
  });

  it('keys are stored hashed, and the OpenAPI document is public', async () => {
    const { reg } = ctx;
    const created = await (
      await reg.fetch('/v1/keys', body('POST', { tenant: 'acme', name: 'ci', scopes: ['read', 'publish'] }))
    ).json();
    expect(created.key).toMatch(/^vsk_[A-Za-z0-9_-]{43}$/);
    const rows = await reg.registry.db.all<{ key_hash: string }>(
      (await import('drizzle-orm')).sql`select key_hash from api_keys`,
    );
    expect(rows.map((r) => r.key_hash)).not.toContain(created.key);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.key_hash))).toBe(true);
    expect((await fetch(`${reg.url}/openapi.json`)).status).toBe(200);
  });
});
