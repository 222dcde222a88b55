import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestText } from '../../src/engine/adapters/manifest.ts';
import { sha256Hex } from '../../registry/hash.ts';
import { appendEvents } from '../../registry/queries/events.ts';
import { getAdapter, resolveAdapter } from '../../registry/queries/adapters.ts';
import { getRunningExperiment } from '../../src/experiments/store.ts';
import { resolveModel } from '../../registry/queries/resolve.ts';
import {
  errorOf,
  loraAdapter,
  publish,
  published,
  registerBase,
  snapshot,
  toyConfig,
  vlmAdapter,
} from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

describe.each(BACKENDS)('publishing and versions (%s)', (backend) => {
  let reg: TestRegistry;
  const config = toyConfig();

  beforeAll(async () => {
    reg = await startRegistry(backend);
    await registerBase(reg, 'toy');
  });
  afterAll(() => reg?.close());

  it('publishes a VLM adapter: integer version, content sha256 of the manifest, % of base', async () => {
    const files = vlmAdapter(config);
    const r = await published(
      reg,
      'alpha',
      { base: 'toy@1', task: 'summarize', tags: 'news,short', card: '# Alpha' },
      files,
    );
    expect(r).toMatchObject({
      adapter: 'alpha',
      version: 1,
      base: 'toy@1',
      kind: 'vlm',
      alias: null,
      status: 'active',
    });
    const entries = await Promise.all(
      files.map(async (f) => ({ name: f.name, sha256: await sha256Hex(f.bytes), bytes: f.bytes.length })),
    );
    expect(r.files).toEqual(entries.sort((a, b) => (a.name < b.name ? -1 : 1)));
    expect(r.sha256).toBe(await sha256Hex(manifestText(entries)));
    expect(r.bytes).toBe(files.reduce((n, f) => n + f.bytes.length, 0));
    // 2 layers x (16+16 + 4*16+4 + 16*4+16) + 1 task token x 16
    expect(r.params).toBe(2 * (32 + 68 + 80) + 16);
    const baseParams = (await (await reg.fetch('/v1/models/toy/versions/1')).json()).params;
    expect(r.params_pct_of_base).toBeCloseTo((r.params / baseParams) * 100, 9);

    const detail = await (await reg.fetch('/v1/adapters/alpha/versions/1')).json();
    expect(detail).toMatchObject({
      adapter: 'alpha',
      version: 1,
      kind: 'vlm',
      bottleneck: 4,
      rank: null,
      task_tokens: ['<|toy|>'],
      target_modules: ['adapter_block'],
      tags: ['news', 'short'],
      card: '# Alpha',
      sha256: r.sha256,
      weights_file: 'adapter.safetensors',
      base: { model: 'toy', version: 1, architecture: 'gpt2' },
    });
    expect(detail.files).toEqual(r.files);
  });

  it('a re-upload of the same content is a new version; versions never change', async () => {
    const files = vlmAdapter(config);
    const again = await published(reg, 'alpha', { base: 'toy@1' }, files);
    expect(again.version).toBe(2);
    const first = await (await reg.fetch('/v1/adapters/alpha/versions/1')).json();
    expect(again.sha256).toBe(first.sha256);
    // The database itself refuses to change a version's content or to delete it.
    await expect(reg.raw(`update adapter_versions set sha256 = 'x' where version = 1`)).rejects.toThrow(/immutable/);
    await expect(reg.raw(`delete from adapter_files`)).rejects.toThrow(/never deleted/);
    await expect(reg.raw(`update adapter_files set bytes = 1`)).rejects.toThrow(/immutable/);
  });

  it('publishes a PEFT LoRA adapter with lineage, metrics and an alias in the same write', async () => {
    const r = await published(
      reg,
      'beta',
      {
        base: 'toy@1',
        alias: 'staging',
        dataset: 'cnn_dailymail',
        license: 'MIT',
        training_notes: '3 epochs',
        metrics: '{"rougeL": 0.41}',
        visibility: 'public',
      },
      loraAdapter(config, { rank: 2 }),
    );
    expect(r).toMatchObject({ version: 1, kind: 'lora', alias: 'staging' });
    const detail = await (await reg.fetch('/v1/adapters/beta/versions/1')).json();
    expect(detail).toMatchObject({
      rank: 2,
      target_modules: ['attn.c_attn'],
      lineage: { dataset: 'cnn_dailymail', license: 'MIT', training_notes: '3 epochs' },
      metrics: { rougeL: 0.41 },
    });
    const alias = await (await reg.fetch('/v1/adapters/beta/aliases/staging')).json();
    expect(alias).toMatchObject({ alias: 'staging', version: 1 });
    const adapter = await (await reg.fetch('/v1/adapters/beta')).json();
    expect(adapter).toMatchObject({
      name: 'beta',
      owner: 'acme',
      visibility: 'public',
      versions: 1,
      aliases: { staging: 1 },
    });
  });

  it('concurrent publishes to a new adapter get distinct, consecutive versions', async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((seed) => published(reg, 'gamma', { base: 'toy@1' }, vlmAdapter(config, { seed }))),
    );
    expect(results.map((r) => r.version).sort()).toEqual([1, 2, 3, 4, 5]);
    const list = await (await reg.fetch('/v1/adapters/gamma/versions?limit=2')).json();
    expect(list.data.map((v: { version: number }) => v.version)).toEqual([5, 4]);
    const next = await (await reg.fetch(`/v1/adapters/gamma/versions?limit=2&cursor=${list.next_cursor}`)).json();
    expect(next.data.map((v: { version: number }) => v.version)).toEqual([3, 2]);
  });

  it('aliases: set, move, history with who and when, rollback in one call', async () => {
    await published(reg, 'delta', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 11 }));
    await published(reg, 'delta', { base: 'toy@1' }, vlmAdapter(config, { seed: 12 }));
    await published(reg, 'delta', { base: 'toy@1' }, vlmAdapter(config, { seed: 13 }));
    const put = (version: number) =>
      reg.fetch('/v1/adapters/delta/aliases/production', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ version, reason: 'release' }),
      });
    expect(await (await put(3)).json()).toMatchObject({
      alias: 'production',
      version: 3,
      previous_version: 1,
      changed: true,
    });
    expect(await (await put(3)).json()).toMatchObject({ version: 3, changed: false });
    const back = await reg.fetch('/v1/adapters/delta/aliases/production/rollback', { method: 'POST' });
    expect(back.status).toBe(200);
    expect(await back.json()).toMatchObject({ version: 1, previous_version: 3 });
    const history = await (await reg.fetch('/v1/adapters/delta/aliases/production/history')).json();
    expect(
      history.data.map((m: { from_version: number | null; to_version: number; kind: string }) => [
        m.from_version,
        m.to_version,
        m.kind,
      ]),
    ).toEqual([
      [3, 1, 'rollback'],
      [1, 3, 'move'],
      [null, 1, 'set'],
    ]);
    expect(history.data[0].moved_by).toMatchObject({ key_name: 'admin', tenant: 'acme' });
    expect(Date.parse(history.data[0].moved_at)).toBeGreaterThan(Date.now() - 60_000);
    expect((await resolveAdapter(reg.registry.db, 'delta@production', null)).version.version).toBe(1);
    expect((await resolveAdapter(reg.registry.db, 'delta', null)).version.version).toBe(1);
    expect((await resolveAdapter(reg.registry.db, 'delta@2', null)).version.version).toBe(2);
    expect((await errorOf(await put(9))).status).toBe(404);
    // The generation API's whole `model` grammar: a base model, or an adapter reference.
    expect(await resolveModel(reg.registry.db, 'toy', null)).toMatchObject({
      kind: 'base',
      base: { model: 'toy', version: 1 },
    });
    expect(await resolveModel(reg.registry.db, 'toy@1', null)).toMatchObject({ kind: 'base', base: { config } });
    expect(await resolveModel(reg.registry.db, 'delta@production', null)).toMatchObject({
      kind: 'adapter',
      via: 'alias',
      version: { version: 1 },
    });
    await expect(resolveModel(reg.registry.db, 'toy@production', null)).rejects.toMatchObject({ status: 404 });
    await expect(resolveModel(reg.registry.db, 'nothing', null)).rejects.toMatchObject({ status: 404 });
    await expect(resolveModel(reg.registry.db, 'a/b', null)).rejects.toMatchObject({ status: 400 });
  });

  const statusLifecycle =
    'status: deprecated still resolves with a warning; yanked is refused (410); aliases never point at yanked';
  it(statusLifecycle, async () => {
    const patch = (version: number, status: string) =>
      reg.fetch(`/v1/adapters/delta/versions/${version}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status }),
      });
    expect((await patch(2, 'deprecated')).status).toBe(200);
    const dl = await reg.fetch('/v1/adapters/delta/versions/2/files/adapter.safetensors');
    expect(dl.status).toBe(200);
    expect(dl.headers.get('x-versa-warning')).toMatch(/deprecated/);
    expect(dl.headers.get('warning')).toMatch(/^299 versa /);
    await dl.arrayBuffer();
    const resolved = await reg.fetch('/v1/resolve?model=delta@2');
    expect(resolved.headers.get('x-versa-warning')).toMatch(/delta@2 is deprecated/);

    // production points at 1: yanking it is refused until the alias moves.
    const refused = await errorOf(await patch(1, 'yanked'));
    expect(refused).toMatchObject({ status: 409, code: 'version_in_use' });
    expect((await patch(2, 'yanked')).status).toBe(200);
    expect(await errorOf(await reg.fetch('/v1/adapters/delta/versions/2/files/adapter.safetensors'))).toMatchObject({
      status: 410,
      code: 'version_yanked',
    });
    expect(await errorOf(await reg.fetch('/v1/resolve?model=delta@2'))).toMatchObject({ status: 410 });
    const alias = await reg.fetch('/v1/adapters/delta/aliases/staging', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"version":2}',
    });
    expect(await errorOf(alias)).toMatchObject({ status: 409, code: 'version_yanked' });
    // The yanked version's metadata stays readable, flagged.
    const meta = await reg.fetch('/v1/adapters/delta/versions/2');
    expect(meta.status).toBe(200);
    expect((await meta.json()).status).toBe('yanked');
    expect(meta.headers.get('x-versa-warning')).toMatch(/yanked/);
    // `NAME` alone skips yanked and deprecated versions when there is no production alias.
    expect((await patch(2, 'active')).status).toBe(200);
  });

  it('lists and searches with filters and cursor pagination', async () => {
    await registerBase(reg, 'other', toyConfig({ hiddenSize: 8, headDim: 4 }));
    for (const [i, name] of ['p-1', 'p-2', 'p-3', 'p-4'].entries()) {
      await published(
        reg,
        name,
        {
          base: i < 2 ? 'toy@1' : 'other@1',
          task: i % 2 ? 'translate' : 'qa',
          tags: i === 3 ? 'rare' : 'common',
          description: i === 2 ? 'Finds needle in haystack' : 'plain',
        },
        vlmAdapter(i < 2 ? config : toyConfig({ hiddenSize: 8, headDim: 4 }), { seed: 40 + i }),
      );
    }
    const names = async (query: string) => {
      const out: string[] = [];
      let cursor: string | null = null;
      do {
        const r: { data: Array<{ name: string }>; next_cursor: string | null } = await (
          await reg.fetch(`/v1/adapters?${query}&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
        ).json();
        expect(r.data.length).toBeLessThanOrEqual(2);
        out.push(...r.data.map((a) => a.name));
        cursor = r.next_cursor;
      } while (cursor);
      return out;
    };
    expect(await names('q=p-')).toEqual(['p-1', 'p-2', 'p-3', 'p-4']);
    expect(await names('base=other')).toEqual(['p-3', 'p-4']);
    expect(await names('base=other@1&task=translate')).toEqual(['p-4']);
    expect(await names('tag=rare')).toEqual(['p-4']);
    expect(await names('q=needle')).toEqual(['p-3']);
    expect(await names('q=%25')).toEqual([]); // LIKE wildcards are literal
    expect(await errorOf(await reg.fetch('/v1/adapters?cursor=%%%'))).toMatchObject({ status: 400 });
    const all = await (await reg.fetch('/v1/adapters?limit=200')).json();
    expect(all.data.map((a: { name: string }) => a.name)).toEqual(
      [...all.data.map((a: { name: string }) => a.name)].sort(),
    );
  });

  it('base models: register, list versions, OpenAI /v1/models lists bases, adapters and aliases', async () => {
    const create = await reg.fetch('/v1/models', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'fresh',
        description: 'new model',
        version: { architecture: 'gpt2', config, files: [] },
      }),
    });
    expect(create.status).toBe(201);
    expect(await create.json()).toMatchObject({
      id: 'fresh',
      object: 'model',
      kind: 'base',
      latest_version: 1,
      description: 'new model',
    });
    expect(await registerBase(reg, 'fresh')).toBe(2);
    const model = await (await reg.fetch('/v1/models/fresh')).json();
    expect(model.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect(model.versions[0].config).toEqual(config);
    const paged = await (await reg.fetch('/v1/models/fresh/versions?limit=1')).json();
    expect(paged.data.map((v: { version: number }) => v.version)).toEqual([2]);
    const rest = await (await reg.fetch(`/v1/models/fresh/versions?limit=1&cursor=${paged.next_cursor}`)).json();
    expect([rest.data.map((v: { version: number }) => v.version), rest.next_cursor]).toEqual([[1], null]);
    const yank = await reg.fetch('/v1/models/fresh/versions/2', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: '{"status":"yanked"}',
    });
    expect((await yank.json()).status).toBe('yanked');
    expect(await errorOf(await publish(reg, 'on-yanked', { base: 'fresh@2' }, vlmAdapter(config)))).toMatchObject({
      status: 400,
      code: 'base_yanked',
    });
    expect((await published(reg, 'on-latest', { base: 'fresh' }, vlmAdapter(config))).base).toBe('fresh@1');
    // A base model and an adapter never share a name (`model` may name either).
    expect(await errorOf(await publish(reg, 'fresh', { base: 'toy@1' }, vlmAdapter(config)))).toMatchObject({
      status: 409,
      code: 'name_taken',
    });
    const shadow = await reg.fetch('/v1/models/alpha/versions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ architecture: 'gpt2', config, files: [] }),
    });
    expect(await errorOf(shadow)).toMatchObject({ status: 409, code: 'name_taken' });
    const dup = await reg.fetch('/v1/models', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'fresh' }),
    });
    expect(await errorOf(dup)).toMatchObject({ status: 409 });
    const list = await (await reg.fetch('/v1/models')).json();
    expect(list.object).toBe('list');
    const ids = list.data.map((m: { id: string }) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['toy', 'fresh', 'alpha', 'delta', 'delta@production', 'beta@staging']));
    for (const m of list.data)
      expect(m).toMatchObject({ object: 'model', created: expect.any(Number), owned_by: expect.any(String) });
  });

  it('experiments: create, one running per adapter, weights, kill switch', async () => {
    const post = (body: unknown) =>
      reg.fetch('/v1/experiments', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const created = await post({
      name: 'ab',
      adapter: 'delta',
      arms: [
        { alias: 'production', weight: 90 },
        { version: 3, weight: 10 },
      ],
      status: 'running',
    });
    expect(created.status).toBe(201);
    const e = await created.json();
    expect(e).toMatchObject({
      object: 'experiment',
      adapter: 'delta',
      status: 'running',
      killed: false,
      arms: [
        { name: 'production', alias: 'production', version: null, weight: 90 },
        { name: 'v3', version: 3, alias: null, weight: 10 },
      ],
    });
    expect(
      await errorOf(
        await post({ name: 'ab2', adapter: 'delta', arms: [{ version: 1, weight: 1 }], status: 'running' }),
      ),
    ).toMatchObject({ status: 409, code: 'experiment_running' });
    expect(
      await errorOf(
        await post({ name: 'bad', adapter: 'delta', arms: [{ version: 1, alias: 'production', weight: 1 }] }),
      ),
    ).toMatchObject({ status: 400 });
    const adapter = (await getAdapter(reg.registry.db, 'delta'))!;
    expect((await getRunningExperiment(reg.registry.db, adapter))?.id).toBe(e.id);
    const patch = (body: unknown) =>
      reg.fetch(`/v1/experiments/${e.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await (await patch({ weights: [50, 50] })).json()).arms.map((a: { weight: number }) => a.weight)).toEqual([
      50, 50,
    ]);
    expect(await errorOf(await patch({ weights: [1] }))).toMatchObject({ status: 400 });
    expect(await (await patch({ killed: true })).json()).toMatchObject({ killed: true, status: 'running' });
    expect(await getRunningExperiment(reg.registry.db, adapter)).toBeUndefined();
    expect(await (await patch({ status: 'stopped' })).json()).toMatchObject({ status: 'stopped' });
    expect(await errorOf(await patch({ status: 'running' }))).toMatchObject({ status: 409 });
    expect(await (await reg.fetch(`/v1/experiments/${e.id}`)).json()).toMatchObject({ id: e.id, status: 'stopped' });
    expect((await (await reg.fetch('/v1/experiments?adapter=delta')).json()).data.length).toBe(1);
  });

  it('events are append-only', async () => {
    await appendEvents(
      reg.registry,
      Array.from({ length: 9 }, (_, i) => ({
        type: 'usage' as const,
        adapter: 'delta',
        adapterVersion: 1,
        data: { tokens: i },
      })),
    );
    const before = await snapshot(reg);
    expect(before.rows.events).toBe(9);
    await expect(reg.raw('delete from events')).rejects.toThrow(/append-only/);
    await expect(reg.raw(`update events set adapter = 'x'`)).rejects.toThrow(/append-only/);
    await expect(reg.raw(`delete from alias_history`)).rejects.toThrow(/append-only/);
  });

  it('downloads are byte-identical with ETag = sha256', async () => {
    const files = loraAdapter(config, { rank: 3, seed: 5 });
    const r = await published(reg, 'epsilon', { base: 'toy@1' }, files);
    for (const f of files) {
      const res = await reg.fetch(`/v1/adapters/epsilon/versions/${r.version}/files/${f.name}`);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(Buffer.from(bytes).equals(Buffer.from(f.bytes))).toBe(true);
      const sha = await sha256Hex(bytes);
      expect(res.headers.get('etag')).toBe(`"${sha}"`);
      expect(res.headers.get('x-versa-sha256')).toBe(sha);
      const cached = await reg.fetch(`/v1/adapters/epsilon/versions/${r.version}/files/${f.name}`, {
        headers: { 'if-none-match': `"${sha}"` },
      });
      expect(cached.status).toBe(304);
    }
    expect(await errorOf(await reg.fetch('/v1/adapters/epsilon/versions/1/files/nope.bin'))).toMatchObject({
      status: 404,
    });
  });

  it('publishing with a wrong declared checksum is refused and stores nothing', async () => {
    const before = await snapshot(reg);
    const files = vlmAdapter(config, { seed: 77 });
    const res = await publish(
      reg,
      'zeta',
      { base: 'toy@1', checksums: JSON.stringify({ 'adapter.safetensors': '0'.repeat(64) }) },
      files,
    );
    expect(await errorOf(res)).toMatchObject({ status: 400, code: 'checksum_mismatch' });
    expect(await snapshot(reg)).toEqual(before);
  });
});
