import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../registry/client.ts';
import { publishFolder } from '../../registry/local.ts';
import { resolveTarget } from '../../src/edge/generation/resolve.ts';
import { errorOf, publish, published, registerBase, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * A chat template belongs to an adapter version: set when the version is published, parsed then,
 * never changed after; the adapter-wide template of before stays only as a fallback.
 */
describe.each(BACKENDS)('chat templates per version (%s)', (backend) => {
  let reg: TestRegistry;
  const config = toyConfig();
  const first = '{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}';
  const second = '{% for m in messages %}{{ m.content }}{% endfor %}';

  beforeAll(async () => {
    reg = await startRegistry(backend);
    await registerBase(reg, 'toy');
  });
  afterAll(async () => {
    await reg?.close();
  });

  const versionJson = async (adapter: string, version: number) =>
    (await reg.fetch(`/v1/adapters/${adapter}/versions/${version}`)).json();
  const templateServed = async (model: string) =>
    (await resolveTarget(reg.registry.db, model, null, { id: 'u', perRequest: false })).adapter?.chatTemplate;

  it('is set at publish, shown on its version, and a change is a new version', async () => {
    await published(reg, 'chatty', { base: 'toy@1', chat_template: first }, vlmAdapter(config, { seed: 1 }));
    await published(reg, 'chatty', { base: 'toy@1', chat_template: second }, vlmAdapter(config, { seed: 1 }));
    expect((await versionJson('chatty', 1)).chat_template).toBe(first);
    expect((await versionJson('chatty', 2)).chat_template).toBe(second);
    expect(await templateServed('chatty@1')).toBe(first);
    expect(await templateServed('chatty@2')).toBe(second);
    // Nothing adapter-wide was set.
    expect((await (await reg.fetch('/v1/adapters/chatty')).json()).chat_template).toBeNull();
  });

  it('a template that does not parse is a 400 naming its line', async () => {
    const broken = '{% for m in messages %}\n{{ m.content }}\n{% foo %}\n{% endfor %}';
    const res = await publish(reg, 'chatty', { base: 'toy@1', chat_template: broken }, vlmAdapter(config));
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.message).toMatch(/chat_template.*does not parse at line 3: .*foo/);
  });

  it('an adapter-wide template is refused with a pointer to publishing; a legacy one is the fallback', async () => {
    const patched = await reg.fetch('/v1/adapters/chatty', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ chat_template: second }),
    });
    expect(patched.status).toBe(400);
    const error = await errorOf(patched);
    expect(error.code).toBe('chat_template_per_version');
    expect(error.message).toMatch(/publish a new version .*--chat-template FILE/);

    // A template saved on the adapter before templates moved to versions (migration 0002).
    await published(reg, 'legacy', { base: 'toy@1' }, vlmAdapter(config, { seed: 2 }));
    await reg.raw(`update adapters set chat_template = '${first}' where name = 'legacy'`);
    expect(await templateServed('legacy@1')).toBe(first);
    await published(reg, 'legacy', { base: 'toy@1', chat_template: second }, vlmAdapter(config, { seed: 2 }));
    expect(await templateServed('legacy@2')).toBe(second);
    expect(await templateServed('legacy@1')).toBe(first);
    // Removing the legacy template is allowed (versions then fall back to the base's).
    const removed = await reg.fetch('/v1/adapters/legacy', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ chat_template: null }),
    });
    expect(removed.status).toBe(200);
    expect(await templateServed('legacy@1')).toBeNull();
    expect(await templateServed('legacy@2')).toBe(second);
  });

  it("`versa publish` takes the folder's tokenizer_config.json template", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-template-'));
    try {
      for (const f of vlmAdapter(config, { seed: 3 })) writeFileSync(join(dir, f.name), f.bytes);
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: first }));
      const client = new RegistryClient({ url: reg.url, key: reg.adminKey });
      const r = await publishFolder(client, dir, 'folder-template', { base: 'toy@1' });
      expect((await versionJson('folder-template', r.version)).chat_template).toBe(first);
      const given = await publishFolder(client, dir, 'folder-template', { base: 'toy@1', chat_template: second });
      expect((await versionJson('folder-template', given.version)).chat_template).toBe(second);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
