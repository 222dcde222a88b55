import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { startVersa, versa } from '../helpers/cli.ts';

const running: ChildProcess[] = [];
/** `versa start` arguments serving the stories260k fixture. */
const STORIES = [
  '--model',
  fixture('stories260k/model.bin'),
  '--tokenizer',
  fixture('stories260k/tokenizer.bin'),
  '--name',
  'stories260k',
];
afterEach(() => running.splice(0).forEach((p) => p.kill('SIGTERM')));

/** `versa start ARGS`, stopped after each test. */
async function start(home: string, args: string[] = [], env: Record<string, string> = {}) {
  const started = await startVersa(home, args, env);
  running.push(started.child);
  return started;
}

describe('npm start (versa start)', () => {
  it('serves the offline demo; the printed curl streams tokens; a restart keeps data and key', async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const first = await start(home);
    expect(first.banner).toMatch(/demo weights/);
    expect(first.banner).toMatch(/A\/B experiment exp_\w+ running/);
    const res = await fetch(first.curl.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${first.curl.key}`, 'content-type': 'application/json' },
      body: first.curl.body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(res.headers.get('x-versa-experiment')).toMatch(/^exp_/);
    const events = (await res.text()).trim().split('\n\n');
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(events.filter((e) => e.includes('"content"')).length).toBeGreaterThan(1);
    expect(readFileSync(join(home, 'admin-key'), 'utf8').trim()).toBe(first.key);
    const models = await (
      await fetch(`${first.url}/v1/models`, { headers: { authorization: `Bearer ${first.key}` } })
    ).json();
    expect(models.data.map((m: { id: string }) => m.id)).toEqual(
      expect.arrayContaining(['versa-demo', 'demo-writer', 'demo-critic', 'demo-writer@production']),
    );

    first.child.kill('SIGTERM');
    await new Promise((r) => first.child.once('exit', r));
    const again = await start(home);
    expect(again.key).toBe(first.key);
    const experiments = await (
      await fetch(`${again.url}/v1/experiments?adapter=demo-writer`, {
        headers: { authorization: `Bearer ${again.key}` },
      })
    ).json();
    expect(experiments.data).toHaveLength(1); // seeded once, not twice
    expect(again.banner).toContain(`A/B experiment ${experiments.data[0].id} running`);
  }, 120_000);

  it('the banner reads alias positions and experiments from the registry, not from the seed', async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const first = await start(home);
    expect(first.banner).toMatch(/demo-writer \(v1 = production, v2 = staging, A\/B experiment exp_\w+ running\)/);
    const id = /A\/B experiment (exp_\w+) running/.exec(first.banner)![1];
    const promoted = await fetch(`${first.url}/v1/experiments/${id}/promote`, {
      method: 'POST',
      headers: { authorization: `Bearer ${first.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ arm: 'candidate' }),
    });
    expect(promoted.status, await promoted.text()).toBe(200);
    first.child.kill('SIGTERM');
    await new Promise((r) => first.child.once('exit', r));

    const again = await start(home);
    expect(again.banner).toMatch(/demo-writer \(v2 = production, staging\)\n/);
    expect(again.banner).not.toMatch(/experiment exp_/);
    expect(again.banner).toMatch(/demo-critic \(v1 = production\)/);
  }, 120_000);

  it('serves several bases, a node each; restarted without one, its adapters answer a 503 naming it', async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const tiny = ['--model', fixture('tiny-gpt2'), '--name', 'tiny-gpt2'];
    const both = await start(home, [...STORIES, ...tiny]);
    expect(both.banner).toMatch(/bases {6}stories260k@1\n {13}tiny-gpt2@1\n/);
    const env = { env: { VERSA_API_KEY: both.key } };
    for (const [dir, name, base] of [
      [fixture('stories260k/adapters/vlm-max'), 'vlm-max', 'stories260k@1'],
      [fixture('tiny-gpt2/adapters/lora-c'), 'lora-c', 'tiny-gpt2@1'],
    ]) {
      const published = await versa(
        ['publish', dir, '--name', name, '--base', base, '--alias', 'production', '--registry', both.url],
        env,
      );
      expect(published.code, published.stderr).toBe(0);
    }
    // Each request runs on its base's node (a node refuses another base's requests: 409).
    const openai = new OpenAI({ baseURL: `${both.url}/v1`, apiKey: both.key, maxRetries: 0 });
    for (const [model, base] of [
      ['vlm-max', 'stories260k@1'],
      ['lora-c', 'tiny-gpt2@1'],
    ]) {
      const r = await openai.completions
        .create({ model, prompt: [1, 15, 214, 7], temperature: 0, max_tokens: 4 })
        .withResponse();
      expect(r.response.headers.get('x-versa-base'), model).toBe(base);
      expect(r.data.usage?.completion_tokens, model).toBeGreaterThan(0);
    }
    both.child.kill('SIGTERM');
    await new Promise((r) => both.child.once('exit', r));

    const only = await start(home, tiny);
    expect(only.banner).toMatch(/base {7}tiny-gpt2@1\n/);
    expect(only.banner).toMatch(/adapters {3}lora-c \(v1 = production\)\n/);
    const complete = (model: string) =>
      fetch(`${only.url}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${only.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: 'Once', max_tokens: 4 }),
      });
    const res = await complete('vlm-max');
    expect(res.status).toBe(503);
    const models = await (
      await fetch(`${only.url}/v1/models`, { headers: { authorization: `Bearer ${only.key}` } })
    ).json();
    const servable = Object.fromEntries(models.data.map((m: { id: string; servable?: boolean }) => [m.id, m.servable]));
    expect(servable).toMatchObject({ 'vlm-max': false, 'lora-c': true, 'tiny-gpt2': true, stories260k: false });
    const { error } = await res.json();
    expect(error.message).toMatch(/stories260k/);
    expect(error.message).toMatch(/versa start --model PATH --name stories260k/);

    // versa import registers a base and says how to serve it; until then its requests get that 503.
    const imported = await versa([
      'import',
      fixture('stories260k/hf'),
      '--name',
      'stories-hf',
      '--registry',
      only.url,
      '--key',
      only.key,
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain(
      `to serve it: versa start --model ${fixture('stories260k/hf')} --name stories-hf`,
    );
    const unserved = await complete('stories-hf');
    expect(unserved.status).toBe(503);
    expect((await unserved.json()).error.message).toMatch(/stories-hf@1.*versa start --model PATH --name stories-hf/);
  }, 180_000);

  it('refuses a --name or --tokenizer before its --model, and a name given twice, in one line', async () => {
    const env = { env: { VERSA_HOME: mkdtempSync(join(tmpdir(), 'versa-home-')), PORT: '0' } };
    const early = await versa(['start', '--name', 'x', '--model', 'x.bin'], env);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/--name belongs to the --model before it/);
    const twice = await versa(['start', '--model', 'a.bin', '--name', 'x', '--model', 'b.bin', '--name', 'x'], env);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr.trim().split('\n')).toHaveLength(1);
    expect(twice.stderr).toMatch(/--name x is given to two models/);
  });

  it('VERSA_API_KEY sets the admin key', async () => {
    const key = `vsk_${'k'.repeat(40)}`;
    const s = await start(mkdtempSync(join(tmpdir(), 'versa-home-')), [], { VERSA_API_KEY: key });
    expect(s.key).toBe(key);
    expect((await fetch(`${s.url}/v1/whoami`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  }, 120_000);

  it('serves a real model: an adapter published with versa publish streams its golden text', async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const s = await start(home, STORIES);
    expect(s.banner).not.toMatch(/demo weights/);
    const published = await versa([
      'publish',
      fixture('stories260k/adapters/vlm-max'),
      '--name',
      'vlm-max',
      '--base',
      'stories260k@1',
      '--alias',
      'production',
      '--registry',
      s.url,
      '--key',
      s.key,
    ]);
    expect(published.code, published.stderr).toBe(0);
    const g = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[1];
    const openai = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: s.key, maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: 'vlm-max',
      messages: [{ role: 'user', content: g.prompt_text }],
      temperature: 0,
      max_tokens: 120,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(g.greedy_text);
  }, 120_000);

  it('refuses --model without --name in one line', async () => {
    const r = await versa(['start', '--model', 'x.bin'], {
      env: { VERSA_HOME: mkdtempSync(join(tmpdir(), 'versa-home-')), PORT: '0' },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--model needs --name/);
  });

  it('a port in use, a malformed key or a bad PORT fails in one line before any model work', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const home = () => ({ VERSA_HOME: mkdtempSync(join(tmpdir(), 'versa-home-')) });
    try {
      const busy = await versa(['start', '--port', String(port)], { env: home() });
      expect(busy.code).not.toBe(0);
      expect(busy.stderr.trim().split('\n'), busy.stderr).toHaveLength(1);
      expect(busy.stderr).toMatch(new RegExp(`port ${port} is already in use`));
      // and the same for the compute node's port, before its model loads
      const compute = await versa(['compute', '--model', fixture('stories260k/model.bin'), '--port', String(port)], {
        env: { VERSA_COMPUTE_TOKEN: 'a-compute-token-of-enough-length' },
      });
      expect(compute.stderr.trim().split('\n'), compute.stderr).toHaveLength(1);
      expect(compute.stderr).toMatch(/already in use/);
    } finally {
      taken.close();
    }
    const badKey = await versa(['start'], { env: { ...home(), PORT: '0', VERSA_API_KEY: 'secret' } });
    expect(badKey.code).not.toBe(0);
    expect(badKey.stderr.trim().split('\n')).toHaveLength(1);
    expect(badKey.stderr).toMatch(/VERSA_API_KEY: an API key is "vsk_"/);
    const badPort = await versa(['start'], { env: { ...home(), PORT: 'eighty' } });
    expect(badPort.stderr.trim()).toMatch(/^versa: error: PORT must be a port number \(0-65535\), not "eighty"$/);
  }, 60_000);

  it('refuses to serve other weights under a registered base name unless --new-version', async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-home-'));
    const dir = mkdtempSync(join(tmpdir(), 'versa-model-'));
    const model = join(dir, 'model.bin');
    copyFileSync(fixture('stories260k/model.bin'), model);
    const args = ['--model', model, '--tokenizer', fixture('stories260k/tokenizer.bin'), '--name', 'tiny'];
    const first = await start(home, args);
    first.child.kill('SIGTERM');
    await new Promise((r) => first.child.once('exit', r));

    const other = readFileSync(model);
    other[other.length - 1] ^= 1; // one bit of the last weight
    writeFileSync(model, other);
    const refused = await versa(['start', ...args], { env: { VERSA_HOME: home, PORT: '0' } });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim().split('\n').at(-1)).toMatch(
      /base model "tiny" is registered with other weights .*tiny@1 .*--new-version/,
    );

    const again = await start(home, [...args, '--new-version']);
    const models = await (
      await fetch(`${again.url}/v1/models/tiny/versions`, { headers: { authorization: `Bearer ${again.key}` } })
    ).json();
    expect(models.data.map((v: { version: number }) => v.version).sort()).toEqual([1, 2]);
  }, 120_000);
});
