import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { versa } from '../helpers/cli.ts';
import { SCHEMAS, jsonSchemaFormat, validatorOf } from '../engine/structured-suite.ts';

describe('versa generate --batch with response_format', () => {
  it('rows with and without a schema decode together; an unsupported keyword fails its row alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-'));
    const schema = SCHEMAS['flat object'];
    const row = { prompt: 'A person, as JSON:', max_tokens: 120 };
    const rows = [
      { ...row, response_format: jsonSchemaFormat('person', schema) },
      { ...row, ignore_eos: true, max_tokens: 10 },
      { ...row, response_format: { type: 'json_object' }, temperature: 0.8, seed: 3 },
      { ...row, response_format: jsonSchemaFormat('p', { type: 'string', format: 'email' }) },
    ];
    const file = join(dir, 'b.jsonl');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const args = ['generate', '--model', fixture('stories260k/model.bin'), '--tokenizer'];
    const r = await versa([...args, fixture('stories260k/tokenizer.bin'), '--batch', file, '--json']);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].finish_reason, r.stderr).toBe('stop');
    expect(validatorOf(schema).safeParse(JSON.parse(lines[0].text)).success).toBe(true);
    expect(lines[1].tokens).toHaveLength(10);
    if (lines[2].finish_reason === 'stop') expect(JSON.parse(lines[2].text)).toBeTypeOf('object');
    expect(lines[3].error).toMatchObject({ param: 'response_format', message: expect.stringMatching(/"format"/) });
    expect(r.code).toBe(1);
  });
});
