import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importLocalModel } from '../../registry/local.ts';
import { startNodeServer, type NodeServer } from '../../src/edge/server-node.ts';
import { fixture } from '../helpers/fixtures.ts';

/**
 * A base model whose tokenizer ships a hostile chat template, behind the Node edge: each chat
 * request fails alone with a 422 `template_budget_exceeded`, and the same server keeps answering.
 * (Each template ships as the chat_template.jinja of a copy of the model, imported as its own base.)
 */
const KEY = `vsk_template-${crypto.randomUUID()}`;
const BOMBS = [
  "{% set s = 'a' %}{% for i in range(25) %}{% set s = s.replace('a','aa') %}{% endfor %}{{ s|length }}",
  '{{ range(20000000)|length }}',
];

describe('a chat template over its budget, at the edge', () => {
  let edge: NodeServer;
  beforeAll(async () => {
    edge = await startNodeServer({
      port: 0,
      home: mkdtempSync(join(tmpdir(), 'versa-template-')),
      apiKey: KEY,
      deps: { generation: { nodes: {} } },
    });
    for (const [i, bomb] of BOMBS.entries()) {
      const dir = mkdtempSync(join(tmpdir(), 'versa-bomb-'));
      cpSync(fixture('stories260k/hf'), dir, { recursive: true });
      writeFileSync(join(dir, 'chat_template.jinja'), bomb);
      await importLocalModel(edge.registry, { path: dir, name: `bomb${i}` });
    }
  });
  afterAll(() => edge?.close());

  const chat = (model: string) =>
    fetch(`${edge.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] }),
    });

  it.each(BOMBS.map((bomb, i) => [bomb, i]))(
    'fails that request with a 422 while /healthz answers: %s',
    async (_, i) => {
      const [res, health] = await Promise.all([chat(`bomb${i}`), fetch(`${edge.url}/healthz`)]);
      expect(res.status).toBe(422);
      expect((await res.json()).error).toMatchObject({
        code: 'template_budget_exceeded',
        type: 'invalid_request_error',
      });
      expect(health.status).toBe(200);
      expect((await fetch(`${edge.url}/healthz`)).status).toBe(200);
    },
  );
});
