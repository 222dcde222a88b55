import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { startVersa, versa } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';

/**
 * `versa start --model DIR` with the Qwen3 folder of test/fixtures/archs:
 * registration, adapter validation against the base's config, /v1/models, and chat templates
 * (the base tokenizer's own, unless the adapter has one).
 */
const BASE_TEMPLATE = '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}';
const running: ChildProcess[] = [];
afterAll(() => running.splice(0).forEach((p) => p.kill('SIGTERM')));

/** The Qwen3 fixture with a chat template in its tokenizer_config.json. */
function qwen3WithTemplate(): string {
  const dir = mkdtempSync(join(tmpdir(), 'versa-qwen3-'));
  const src = fixture('archs', 'qwen3');
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'special_tokens_map.json'])
    copyFileSync(join(src, f), join(dir, f));
  symlinkSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: BASE_TEMPLATE }));
  return dir;
}

async function start(args: string[]) {
  const started = await startVersa(mkdtempSync(join(tmpdir(), 'versa-home-')), args);
  running.push(started.child);
  return started;
}

describe('versa start --model with a Qwen3 folder', () => {
  it('serves base and LoRA through the OpenAI routes with the base tokenizer chat template', async () => {
    const s = await start(['--model', qwen3WithTemplate(), '--name', 'qwen3-tiny']);
    const publish = (dir: string, name: string) =>
      versa(['publish', dir, '--name', name, '--base', 'qwen3-tiny@1', '--registry', s.url, '--key', s.key]);
    const ok = await publish(fixture('archs', 'qwen3/adapters/lora'), 'qwen3-lora');
    expect(ok.code, ok.stderr).toBe(0);
    const wrong = await publish(fixture('archs', 'phi3/adapters/lora'), 'phi3-lora');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/module "mlp.gate_up_proj" cannot be adapted/);

    // versa import registers other folders of these architectures over HTTP, with the tokenizer's template.
    const imported = await versa([
      'import',
      fixture('archs', 'gemma2'),
      '--name',
      'gemma2-tiny',
      '--registry',
      s.url,
      '--key',
      s.key,
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const version = await (
      await fetch(`${s.url}/v1/models/qwen3-tiny/versions/1`, { headers: { authorization: `Bearer ${s.key}` } })
    ).json();
    expect(version).toMatchObject({ architecture: 'qwen3', tokenizer: { chat_template: BASE_TEMPLATE } });

    const openai = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: s.key, maxRetries: 0 });
    const ids = (await openai.models.list()).data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['qwen3-tiny', 'qwen3-lora', 'gemma2-tiny']));

    const settings = { temperature: 0, max_tokens: 12 } as const;
    const chat = async (model: string) =>
      (await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Tim' }], ...settings }))
        .choices[0].message.content;
    const complete = async (model: string, prompt: string) =>
      (await openai.completions.create({ model, prompt, ...settings })).choices[0].text;
    for (const model of ['qwen3-tiny', 'qwen3-lora']) {
      const text = await chat(model);
      expect(text, model).toBe(await complete(model, '[user] Tim\n'));
      expect(text, model).not.toBe(await complete(model, 'Tim'));
    }

    // A version's own template wins over the base's (a template is set by publishing a version).
    const template = join(mkdtempSync(join(tmpdir(), 'versa-template-')), 'chat.jinja');
    writeFileSync(template, '{% for m in messages %}{{ m.content }}{% endfor %}');
    const v2 = await versa([
      'publish',
      fixture('archs', 'qwen3/adapters/lora'),
      ...['--name', 'qwen3-lora', '--base', 'qwen3-tiny@1', '--chat-template', template],
      ...['--registry', s.url, '--key', s.key],
    ]);
    expect(v2.code, v2.stderr).toBe(0);
    expect(await chat('qwen3-lora')).toBe(await complete('qwen3-lora', 'Tim'));
  }, 120_000);
});
