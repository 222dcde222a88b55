import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../registry/hash.ts';
import { sweepOrphans } from '../../registry/sweep.ts';
import { published, registerBase, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * A version's identity covers what it does: `sha256` stays its files' digest (what a compute node
 * checks), and `behavior_sha256` adds its base and its own chat template, so the same files with
 * another template are another identity.
 */
describe.each(BACKENDS)("a version's behavior digest (%s)", (backend) => {
  let reg: TestRegistry;
  const config = toyConfig();
  const files = vlmAdapter(config, { seed: 4 });
  const plain = '{% for m in messages %}{{ m.content }}{% endfor %}';
  const tagged = '{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}';

  beforeAll(async () => {
    reg = await startRegistry(backend);
    await registerBase(reg, 'toy');
    // toy@2: the same config, other files.
    const res = await reg.fetch('/v1/models/toy/versions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        architecture: config.architecture,
        config,
        files: [{ name: 'model.safetensors', sha256: 'b'.repeat(64), bytes: 1234 }],
      }),
    });
    expect(res.status).toBe(201);
  });
  afterAll(() => reg?.close());

  const version = async (v: number) => (await reg.fetch(`/v1/adapters/same/versions/${v}`)).json();
  /** The documented recipe: sha256 of `<sha>  files`, `<sha>  base` and `<sha>  chat_template` lines. */
  const recompute = async (v: { sha256: string; base: { sha256: string }; chat_template: string | null }) =>
    sha256Hex(
      `${v.sha256}  files\n${v.base.sha256}  base\n` +
        (v.chat_template === null ? '' : `${await sha256Hex(v.chat_template)}  chat_template\n`),
    );

  it('the same files with another chat template or base: same sha256, another behavior digest', async () => {
    const one = await published(reg, 'same', { base: 'toy@1', chat_template: plain }, files);
    const two = await published(reg, 'same', { base: 'toy@1', chat_template: tagged }, files);
    const three = await published(reg, 'same', { base: 'toy@1' }, files);
    const four = await published(reg, 'same', { base: 'toy@2', chat_template: plain }, files);
    const five = await published(reg, 'same', { base: 'toy@1', chat_template: plain }, files);
    const all = [one, two, three, four, five];
    expect(new Set(all.map((v) => v.sha256)).size).toBe(1);
    expect(new Set(all.slice(0, 4).map((v) => v.behavior_sha256)).size).toBe(4);
    // The same files, base and template again: the same behavior.
    expect(five.behavior_sha256).toBe(one.behavior_sha256);

    for (let v = 1; v <= 5; v++) {
      const detail = await version(v);
      expect(detail.behavior_sha256).toBe(all[v - 1].behavior_sha256);
      expect(detail.behavior_sha256).toBe(await recompute(detail));
    }
    const list = await (await reg.fetch('/v1/adapters/same/versions')).json();
    expect(list.data.map((v: { behavior_sha256: string }) => v.behavior_sha256)).toEqual(
      all.map((v) => v.behavior_sha256).reverse(),
    );
  });

  it('a version from before behavior digests gets its digest from the sweep, and then keeps it', async () => {
    // What a registry migrated from before has: a version row without a behavior digest.
    await reg.raw(
      `insert into adapter_versions (id, adapter_id, version, base_version_id, kind, bottleneck, rank,
        target_modules, task_tokens, params, params_pct_of_base, bytes, sha256, weights_file, tags, status,
        created_at, chat_template)
      select 'adv_legacy', adapter_id, 99, base_version_id, kind, bottleneck, rank, target_modules, task_tokens,
        params, params_pct_of_base, bytes, sha256, weights_file, tags, status, created_at, chat_template
      from adapter_versions where version = 2 and adapter_id = (select id from adapters where name = 'same')`,
    );
    expect((await version(99)).behavior_sha256).toBeNull();
    await sweepOrphans(reg.registry.db, reg.blobs);
    const legacy = await version(99);
    expect(legacy.behavior_sha256).toBe((await version(2)).behavior_sha256);
    await expect(
      reg.raw(`update adapter_versions set behavior_sha256 = '${'0'.repeat(64)}' where id = 'adv_legacy'`),
    ).rejects.toThrow(/immutable/);
  });
});
