import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { versa } from '../helpers/cli.ts';
import { fixture, readJson } from '../helpers/fixtures.ts';

/** `versa generate` on the architecture fixtures (test/fixtures/archs). */
const golden = (arch: string) => readJson('archs', arch, 'expected/greedy.json');

describe('versa generate on other architectures', () => {
  it.each(['qwen3', 'gemma2'])('%s: --prompt-ids --json reproduces the base golden', async (arch) => {
    const p = golden(arch).variants.base.prompts[0];
    const r = await versa([
      'generate',
      '--model',
      fixture('archs', arch),
      '--prompt-ids',
      p.prompt_ids.join(','),
      '--max-tokens',
      '24',
      '--ignore-eos',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tokens).toEqual(p.greedy_new_tokens);
  });

  it('phi3: --batch decodes base and LoRA lines together, each as its golden', async () => {
    const spec = golden('phi3');
    const lora = fixture('archs', 'phi3/adapters/lora');
    const lines = [
      ...spec.variants.base.prompts.map((p: any) => ({ adapter: null, p })),
      ...spec.variants.lora.prompts.map((p: any) => ({ adapter: lora, p })),
    ];
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const jsonl = lines.map(({ adapter, p }) =>
      JSON.stringify({ adapter, prompt_ids: p.prompt_ids, max_tokens: 24, ignore_eos: true }),
    );
    writeFileSync(join(dir, 'batch.jsonl'), `${jsonl.join('\n')}\n`);
    const r = await versa([
      'generate',
      '--model',
      fixture('archs', 'phi3'),
      '--batch',
      join(dir, 'batch.jsonl'),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).tokens);
    expect(out).toEqual(lines.map(({ p }) => p.greedy_new_tokens));
  });

  const refusals: Array<[string, string, Record<string, unknown>, RegExp]> = [
    [
      'an unsupported architecture',
      'llama3',
      { model_type: 'falcon', architectures: ['FalconForCausalLM'] },
      /unsupported model \(model_type "falcon", architectures \["FalconForCausalLM"\]\)/,
    ],
    [
      'an unknown rope_scaling type',
      'llama3',
      { rope_scaling: { rope_type: 'yarn', factor: 4 } },
      /rope_scaling type "yarn" is not supported/,
    ],
    ['a partial rotary factor', 'phi3', { partial_rotary_factor: 0.5 }, /partial_rotary_factor 0.5 is not supported/],
    ['an unknown activation', 'gemma', { hidden_activation: 'relu2' }, /hidden_activation "relu2" is not supported/],
  ];
  for (const [what, arch, change, message] of refusals) {
    it(`refuses ${what} with one line naming it`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'versa-'));
      const config = readJson('archs', arch, 'config.json');
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, ...change }));
      const r = await versa(['generate', '--model', dir, '--prompt-ids', '1', '--json']);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    });
  }
});
