import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { describe, expect, it, vi } from 'vitest';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { versa } from '../helpers/cli.ts';
import { Llama2cTokenizer } from '../../src/engine/tokenizer/llama2c.ts';
import { configFromHf } from '../../src/engine/model/config.ts';
import { EngineClient } from '../../src/engine/worker/client.ts';
import { Engine, type PromptEncoderFactory } from '../../src/engine/engine.ts';
import { TokenizerThread } from '../../src/engine/worker/tokenizer-thread.ts';
import { TaskTokenizer } from '../../src/engine/tokenizer/task-tokens.ts';
import { HfTokenizer } from '../../src/engine/tokenizer/hf.ts';
import type { GenerateResult } from '../../src/engine/generation/request.ts';
import { parseChatTemplate, renderChat } from '../../src/engine/tokenizer/chat-template.ts';
import { describeLora } from '../../src/engine/adapters/format.ts';
import { inspectModel } from '../../src/engine/loaders/load.ts';
import { parseHeader } from '../../src/engine/weights/safetensors.ts';

/** run.c's merge loop as it is written (O(n^2)): the reference the heap version must equal. */
function quadraticMerge(tok: Llama2cTokenizer, text: string): number[] {
  const t = tok as unknown as { ids: Map<string, number>; keys: string[]; scores: Float32Array };
  const tokens = tok.encodePlain(''); // empty: then build the pre-merge tokens the way encodePlain does
  const bytes = new TextEncoder().encode(text);
  if (bytes.length) tokens.push(t.ids.get(' ')!);
  for (let i = 0; i < bytes.length;) {
    let j = i + 1;
    while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
    const id = t.ids.get(String.fromCharCode(...bytes.subarray(i, j)));
    if (id !== undefined) tokens.push(id);
    else for (let k = i; k < j; k++) tokens.push(bytes[k] + 3);
    i = j;
  }
  for (;;) {
    let best = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = t.ids.get(t.keys[tokens[i]] + t.keys[tokens[i + 1]]);
      if (id !== undefined && t.scores[id] > best) [best, bestId, bestIdx] = [t.scores[id], id, i];
    }
    if (bestIdx < 0) return tokens;
    tokens.splice(bestIdx, 2, bestId);
  }
}

describe('bounded work per request', () => {
  const tok = Llama2cTokenizer.fromFile(fixture('stories260k/tokenizer.bin'));

  it("the llama2.c tokenizer's heap merges equal run.c's loop on random texts", () => {
    const { cases } = readJson('stories260k/expected/tokenizer_cases.json');
    const words = (cases as Array<{ text: string }>).map((c) => c.text);
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let k = 0; k < 200; k++) {
      const text = Array.from({ length: 1 + rand(12) }, () => words[rand(words.length)]).join(rand(2) ? ' ' : '');
      expect(tok.encodePlain(text), JSON.stringify(text)).toEqual(quadraticMerge(tok, text));
    }
  });

  it('tokenizes a 100 KB prompt (hours with the quadratic loop) in one pass', () => {
    const text = 'Once upon a time, there was a little girl named Lily. '.repeat(1900);
    expect(text.length).toBeGreaterThan(100_000);
    expect(tok.encode(text).length).toBeGreaterThan(10_000);
  });

  it('refuses a prompt too long for the context before tokenizing it; the engine stays responsive', async () => {
    const engine = await EngineClient.start({
      model: fixture('stories260k/model.bin'),
      tokenizer: fixture('stories260k/tokenizer.bin'),
      threads: 2,
    });
    try {
      const huge = 'a'.repeat(1 << 20);
      await expect(engine.generate({ prompt: huge }).result).rejects.toThrow(
        /the prompt is 1048576 bytes: more than the context of 512 tokens can hold/,
      );
      // Just under the bound (512 tokens of 7 bytes at most), it is tokenized (off the engine's
      // thread), then refused by its token count; one that fits runs.
      await expect(engine.generate({ prompt: 'a'.repeat(3584) }).result).rejects.toThrow(
        /the prompt has \d+ tokens but the context is 512/,
      );
      expect((await engine.generate({ prompt: 'Once upon', maxTokens: 2 }).result).promptTokens).toBeGreaterThan(1);
      const r = await engine.generate({ promptIds: [1], maxTokens: 4 }).result;
      expect(r.tokens.length).toBe(4);
    } finally {
      await engine.close();
    }
  });

  it("refuses a text over the context times the tokenizer's longest piece: the tokenizer never sees it", async () => {
    const encode = vi.spyOn(Llama2cTokenizer.prototype, 'encode');
    const engine = await Engine.load({ model: fixture('stories260k/model.bin'), threads: 1 }); // tokenizes here
    try {
      // stories260k: 512 positions, pieces of 7 bytes at most. Before, any text up to 128 KB was tokenized.
      expect(encode).not.toHaveBeenCalled();
      await expect(engine.admit({ prompt: 'a'.repeat(512 * 7 + 1) })).rejects.toThrow(
        /the prompt is 3585 bytes: more than the context of 512 tokens can hold \(a token .* 7 bytes at most\)/,
      );
      await expect(engine.admit({ prompt: 'a'.repeat(131_072) })).rejects.toThrow(/131072 bytes/);
      expect(encode).not.toHaveBeenCalled();
      const admitted = await engine.admit({ prompt: 'Once upon a time' });
      expect(encode).toHaveBeenCalledTimes(1);
      expect(admitted.prompt).toEqual(tok.encode('Once upon a time'));
    } finally {
      encode.mockRestore();
      await engine.close();
    }
  });

  it("a tokenizer's longest piece bounds the bytes one token stands for", () => {
    // llama2.c: its longest piece. Byte-level BPE (GPT-2): one character per byte, so GPT-2's piece
    // of 64 "ÃĤ" pairs is 128 bytes, not its 256 UTF-8 bytes. SentencePiece-style: UTF-8 bytes ("▁friend").
    expect(tok.maxTokenBytes).toBe(7);
    expect(HfTokenizer.fromPath(fixture('tiny-gpt2')).maxTokenBytes).toBe(128);
    expect(HfTokenizer.fromPath(fixture('stories260k/hf')).maxTokenBytes).toBe(9);
    expect(new TaskTokenizer(tok, 512, ['<|a-long-task-token|>']).maxTokenBytes).toBe(21);
    // Every text encodes to at least bytes / maxTokenBytes tokens (the bound's premise).
    for (const text of ['Once upon a time', ' '.repeat(300), 'ÃĤ'.repeat(100), '\u{1F600}'.repeat(50)]) {
      const hf = HfTokenizer.fromPath(fixture('tiny-gpt2'));
      expect(hf.encode(text).length * hf.maxTokenBytes).toBeGreaterThanOrEqual(Buffer.byteLength(text));
      expect(tok.encode(text).length * tok.maxTokenBytes).toBeGreaterThanOrEqual(Buffer.byteLength(text));
    }
  });

  it('prompts are tokenized in a thread of their own, to the same ids (task tokens included)', async () => {
    const encode = vi.spyOn(Llama2cTokenizer.prototype, 'encode');
    const thread = new TokenizerThread(fixture('stories260k/tokenizer.bin'), 512);
    try {
      expect(thread.threadId).not.toBe(threadId);
      const text = 'Once upon a time, <|max|> there was a girl. '.repeat(20);
      const expected = [tok.encode(text), new TaskTokenizer(tok, 512, ['<|max|>']).encode(text)];
      encode.mockClear();
      expect(await Promise.all([thread.encode(text, []), thread.encode(text, ['<|max|>'])])).toEqual(expected);
      expect(encode).not.toHaveBeenCalled(); // not on this thread
    } finally {
      encode.mockRestore();
      await thread.close();
    }
  });

  it('starts the prompt encoder before the session (overlapping it), and closes it if the load fails', async () => {
    const create = vi.spyOn(ort.InferenceSession, 'create');
    const close = vi.fn(async () => {});
    const encoder = vi.fn<PromptEncoderFactory>(() => ({ encode: async () => [1], close }));
    try {
      const engine = await Engine.load({ model: fixture('stories260k/model.bin'), threads: 1 }, encoder);
      await engine.close();
      expect(encoder).toHaveBeenCalledTimes(1);
      expect(encoder.mock.invocationCallOrder[0]).toBeLessThan(create.mock.invocationCallOrder[0]);
      // A tokenizer that is found but cannot be read fails the load after the encoder started.
      const bad = join(mkdtempSync(join(tmpdir(), 'versa-tokenizer-')), 'tokenizer.bin');
      writeFileSync(bad, 'not a tokenizer');
      close.mockClear();
      await expect(Engine.load({ model: fixture('stories260k/model.bin'), tokenizer: bad }, encoder)).rejects.toThrow();
      expect(close).toHaveBeenCalledTimes(1);
    } finally {
      create.mockRestore();
    }
  });

  it('running rows keep decoding while a prompt is being tokenized', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let calls = 0;
    // The real tokenizer thread, held at a gate: a tokenization that takes as long as the test wants.
    const gated: PromptEncoderFactory = (path, vocab) => {
      const thread = new TokenizerThread(path, vocab);
      return {
        encode: async (text, tasks) => (calls++, await gate, thread.encode(text, tasks)),
        close: () => thread.close(),
      };
    };
    const engine = await Engine.load({ model: fixture('stories260k/model.bin'), threads: 1 }, gated);
    try {
      const running = sink();
      engine.start('running', await engine.admit({ promptIds: [1], maxTokens: 60, ignoreEos: true }), running);
      const admitting = engine.admit({ prompt: 'Once upon a time' });
      const steps = { n: 0 };
      await new Promise<void>((resolve) => (engine.onStep = () => ++steps.n === 10 && resolve()));
      expect(calls).toBe(1); // the prompt is still being tokenized ...
      expect(running.tokens.length).toBeGreaterThanOrEqual(10); // ... and the running row decoded on meanwhile
      open();
      const late = sink();
      engine.start('late', await admitting, late);
      expect((await late.done).completionTokens).toBeGreaterThan(0);
      expect((await running.done).completionTokens).toBe(60);
    } finally {
      engine.onStep = undefined;
      await engine.close();
    }
  });

  it('model configs are bounded: a million layers is refused by name', () => {
    const base = readJson('tiny-gpt2/config.json');
    expect(() => configFromHf({ ...base, n_layer: 1_000_000 })).toThrow(/"n_layer" is 1000000, over the limit of 1024/);
    expect(() => configFromHf({ ...base, vocab_size: 1e9 })).toThrow(/"vocab_size" is 1000000000, over the limit/);
  });

  it('versa pull writes nothing outside its folder when a registry sends path names', async () => {
    const sha = 'a'.repeat(64);
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.startsWith('/v1/resolve')) {
        res.end(
          JSON.stringify({ adapter: 'x', version: 1, files: [{ name: '../../evil.txt', sha256: sha, bytes: 1 }] }),
        );
      } else res.end('e');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as { port: number };
    const cwd = mkdtempSync(join(tmpdir(), 'versa-pull-'));
    try {
      const out = join(cwd, 'a', 'b');
      const r = await versa(['pull', 'x@1', '--registry', `http://127.0.0.1:${port}`, '--key', 'vsk_x', '--out', out]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/not a plain name: "\.\.\/\.\.\/evil\.txt"/);
      expect(existsSync(join(cwd, 'evil.txt'))).toBe(false);
      expect(existsSync(out)).toBe(false);
    } finally {
      server.close();
    }
  });
});

describe('tenant-supplied templates and patterns run bounded', () => {
  it('a chat template with nested range loops stops at its step budget; a broken one is refused at parse', () => {
    const bomb = '{% for a in range(100000) %}{% for b in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}';
    expect(() => renderChat([{ role: 'user', content: 'hi' }], { template: bomb })).toThrow(
      /range\(\) of 100000 numbers would be over|ran over its budget of 100000 steps/,
    );
    expect(renderChat([{ role: 'user', content: 'hi' }])).toBe('hi'); // the budget is per render
    expect(() => parseChatTemplate('{{ x.y(')).toThrow(/does not parse/);
  });

  it('PEFT pattern keys are module paths matched without a regex engine; regex syntax is refused by name', () => {
    const config = inspectModel(fixture('stories260k/hf')).config;
    const file = readFileSync(fixture('stories260k/adapters/lora-max/adapter_model.safetensors'));
    const header = parseHeader(file, file.length);
    const peft = readJson('stories260k/adapters/lora-max/adapter_config.json');
    const scales = (alpha_pattern: object) =>
      describeLora(header, config, { ...peft, alpha_pattern }).modules.map((m) => [m.layer, m.module, m.scale]);
    // "." matches any character, as in PEFT's regex; the key must end the module's full name.
    for (const [layer, module, scale] of scales({ 'layers.1.mlp.down_proj': 16, 'k.proj': 4 })) {
      const expected = module === 'mlp.down_proj' && layer === 1 ? 4 : module === 'self_attn.k_proj' ? 1 : 2;
      expect(scale, `${layer} ${module}`).toBe(expected);
    }
    expect(() => scales({ '(a+)+b': 1 })).toThrow(/alpha_pattern key "\(a\+\)\+b" is not supported/);
    expect(() => describeLora(header, config, { ...peft, rank_pattern: { 'q_proj|k_proj': 2 } })).toThrow(
      /rank_pattern key/,
    );
  });
});

/** A sequence sink that keeps the tokens and settles `done` with the result. */
function sink() {
  const tokens: number[] = [];
  let resolve!: (r: GenerateResult) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<GenerateResult>((res, rej) => ((resolve = res), (reject = rej)));
  return {
    tokens,
    done,
    onTokens: (events: Array<{ token: number }>) => tokens.push(...events.map((e) => e.token)),
    onDone: resolve,
    onError: reject,
  };
}
