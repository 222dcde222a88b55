import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { versa } from '../helpers/cli.ts';

describe('versa generate', () => {
  const stories = fixture('stories260k/model.bin');
  const tokenizer = fixture('stories260k/tokenizer.bin');

  it('--json prints {tokens, text, finish_reason}', async () => {
    const p = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[2];
    const r = await versa([
      'generate',
      '--model',
      stories,
      '--tokenizer',
      tokenizer,
      '--adapter',
      fixture('stories260k/adapters/vlm-max'),
      '--prompt',
      `<|max|>${p.prompt_text}`,
      '--max-tokens',
      '120',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ tokens: p.greedy_new_tokens, text: p.greedy_text, finish_reason: 'length' });
  });

  it('--prompt-ids are fed verbatim', async () => {
    const r = await versa([
      'generate',
      '--model',
      fixture('tiny-gpt2'),
      '--prompt-ids',
      '0,0,195,731',
      '--max-tokens',
      '6',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tokens).toEqual([731, 114, 114, 114, 114, 114]);
  });

  it('--batch decodes all lines together and prints them in input order', async () => {
    const spec = readJson('tiny-gpt2/expected/adapters/mixed_batch.json');
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const lines = [...spec.rows].reverse().map((r: any) =>
      JSON.stringify({
        adapter: r.adapter ? fixture('tiny-gpt2/adapters', r.adapter) : null,
        prompt_ids: r.input_ids,
        max_tokens: 16,
        ignore_eos: true,
      }),
    );
    writeFileSync(join(dir, 'batch.jsonl'), `${lines.join('\n')}\n`);
    const r = await versa(['generate', '--model', fixture('tiny-gpt2'), '--batch', join(dir, 'batch.jsonl'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(out.map((o) => o.tokens)).toEqual([...spec.rows].reverse().map((row: any) => row.expected_new_tokens));
  });

  it('streams text without --json', async () => {
    const r = await versa([
      'generate',
      '--model',
      fixture('stories260k/hf'),
      '--prompt',
      'Once upon a time',
      '--max-tokens',
      '8',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(', there was a little girl');
  });

  const errors: Array<[string, string[], RegExp]> = [
    ['a missing model', ['generate', '--model', '/nope/model.bin', '--prompt', 'x'], /model not found/],
    ['a bad temperature', ['generate', '--model', stories, '--temperature', 'hot'], /temperature/],
    [
      'a prompt longer than the context',
      ['generate', '--model', stories, '--prompt-ids', Array(600).fill(5).join(',')],
      /context is 512/,
    ],
    [
      'an id outside the vocabulary',
      ['generate', '--model', stories, '--prompt-ids', '1,9999'],
      /outside the vocabulary/,
    ],
    [
      'an adapter for another base',
      ['generate', '--model', stories, '--adapter', fixture('tiny-gpt2/adapters/vglm-a')],
      /project_down/,
    ],
    ['two prompt sources', ['generate', '--model', stories, '--prompt', 'a', '--prompt-ids', '1'], /only one of/],
    [
      'an execution provider this host cannot load',
      ['generate', '--model', stories, '--ep', 'cuda'],
      /execution provider "cuda" could not be loaded: .*ONNXRUNTIME_NODE_INSTALL=cuda12/,
    ],
  ];
  for (const [what, args, message] of errors) {
    it(`refuses ${what} with one line and a non-zero exit`, async () => {
      const r = await versa(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    });
  }

  it('a VLM adapter generating its own task token decodes; a failing --batch row fails alone, in place', async () => {
    const golden = readJson('tiny-gpt2/expected/adapters/vglm-b.json').prompts[0];
    const vglmB = fixture('tiny-gpt2/adapters/vglm-b');
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const rows = [
      { adapter: vglmB, prompt_ids: golden.input_ids, max_tokens: 6, ignore_eos: true },
      { prompt_ids: [1, 99999], max_tokens: 2 },
      { prompt_ids: [98, 15], max_tokens: 2, ignore_eos: true },
    ];
    writeFileSync(join(dir, 'b.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const r = await versa(['generate', '--model', fixture('tiny-gpt2'), '--batch', join(dir, 'b.jsonl'), '--json']);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[0].tokens).toEqual(golden.greedy_new_tokens.slice(0, 6)); // starts with task token 1000
    expect(lines[0].text).toMatch(/^<\|b\|>/);
    expect(lines[1].error).toMatchObject({ type: 'invalid_request_error', param: 'prompt_ids' });
    expect(lines[1].error.message).toMatch(/outside the vocabulary/);
    expect(lines[2].tokens).toHaveLength(2);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/1 of 3 rows failed/);
  });

  it("every failure a --batch row can cause is that row's error line; the other rows complete", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const broken = join(dir, 'broken-adapter');
    mkdirSync(broken);
    writeFileSync(join(broken, 'adapter_config.json'), '{"peft_type": "LORA", "r": 4');
    const good = { prompt_ids: [98, 15], max_tokens: 2, ignore_eos: true };
    const rows: Array<[string, unknown, RegExp]> = [
      ['good', good, /./],
      ['wrong base', { ...good, adapter: fixture('stories260k/adapters/vlm-max') }, /vlm-max/],
      ['missing folder', { ...good, adapter: join(dir, 'nope') }, /adapter folder not found/],
      ['bad files', { ...good, adapter: broken }, /invalid JSON/],
      ['too long', { ...good, prompt_ids: Array(600).fill(5) }, /context is 512/],
      ['bad parameter', { ...good, temperature: -1 }, /temperature/],
      ['unknown field', { ...good, max_token: 3 }, /max_token/],
      ['not JSON', '{"prompt": ', /not valid JSON/],
      ['good again', { adapter: fixture('tiny-gpt2/adapters/lora-c'), ...good }, /./],
    ];
    const file = join(dir, 'b.jsonl');
    writeFileSync(file, rows.map(([, r]) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n'));
    const r = await versa(['generate', '--model', fixture('tiny-gpt2'), '--batch', file, '--json']);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines, r.stderr).toHaveLength(rows.length);
    rows.forEach(([what, , message], i) => {
      if (what.startsWith('good')) return expect(lines[i].tokens, what).toHaveLength(2);
      expect(lines[i].error?.message, what).toMatch(message);
      expect(lines[i].error.message, what).toMatch(new RegExp(`b\\.jsonl:${i + 1}: `));
      expect(lines[i].error.type, what).toBe('invalid_request_error');
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^versa: error: 7 of 9 rows failed .*b\.jsonl:2: /);
  });

  it('--batch rows take the sampling parameters, each its own; a bad one fails its row alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const row = { prompt_ids: [1], max_tokens: 5, ignore_eos: true };
    const rows = [
      { ...row, logit_bias: { '300': 100 } },
      { ...row, repetition_penalty: 1.5, frequency_penalty: 1, presence_penalty: 0.5, min_p: 0.1 },
      { ...row, min_tokens: 9 },
      { ...row, logit_bias: { '99999': 1 } },
    ];
    const file = join(dir, 'b.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const r = await versa(['generate', '--model', stories, '--batch', file, '--json']);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].tokens).toEqual([300, 300, 300, 300, 300]);
    expect(lines[1].tokens, r.stderr).toHaveLength(5);
    expect(lines[2].error.message).toMatch(/min_tokens 9 is over max_tokens 5/);
    expect(lines[3].error.message).toMatch(/logit_bias token id 99999 is outside the vocabulary/);
    expect(r.code).toBe(1);
  });

  it('--batch rows take n (choices) and echo; n over 8 fails its row alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const row = { prompt: 'Once upon a time', max_tokens: 8, ignore_eos: true };
    const rows = [
      { ...row, temperature: 1, seed: 3, n: 3 },
      { ...row, temperature: 0, n: 2, echo: true },
      { ...row, temperature: 0 },
      { ...row, n: 9 },
    ];
    const file = join(dir, 'b.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const r = await versa(['generate', '--model', stories, '--tokenizer', tokenizer, '--batch', file, '--json']);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(
      lines[0].choices.map((c: { index: number }) => c.index),
      r.stderr,
    ).toEqual([0, 1, 2]);
    expect(new Set(lines[0].choices.map((c: { text: string }) => c.text)).size).toBe(3);
    expect(lines[0].text).toBe(lines[0].choices[0].text);
    const greedy = lines[2].text;
    expect(lines[1].choices.map((c: { text: string }) => c.text)).toEqual([
      `Once upon a time${greedy}`,
      `Once upon a time${greedy}`,
    ]);
    expect(lines[2].choices).toBeUndefined();
    expect([lines[3].error.param, lines[3].error.message]).toEqual(['n', expect.stringMatching(/n must be at most 8/)]);
    expect(r.code).toBe(1);
  });

  it('refuses a batch file with no requests in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    writeFileSync(join(dir, 'b.jsonl'), '\n\n');
    const r = await versa(['generate', '--model', stories, '--batch', join(dir, 'b.jsonl'), '--json']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/b\.jsonl: no requests$/);
  });
});
