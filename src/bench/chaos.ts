import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createApiKey, generateKey } from '../../registry/auth.ts';
import { RegistryClient } from '../../registry/client.ts';
import { importLocalModel, publishFolder } from '../../registry/local.ts';
import { openLocalRegistry } from '../edge/server-node.ts';
import { readLlama2cConfig } from '../engine/loaders/llama2c.ts';
import { linearModules } from '../engine/model/layout.ts';
import { writeLoraAdapter, writeVlmAdapter } from '../engine/synthetic.ts';
import { streamCompletion, type StreamOutcome } from './sse-stream.ts';

export interface ChaosResult {
  streams: number;
  seconds: number;
  setup: string;
  completed: number;
  /** Ended with an error chunk (or an HTTP error before the first token): honest failures. */
  honest_errors: number;
  errors_by_code: Record<string, number>;
  /** Ended without [DONE] or an error, or hung: must be 0. */
  lost: number;
  /** A completed stream whose text is not its adapter's single-stream text (beyond a near-tie): must be 0. */
  cross_talk: number;
  /** Distinct single-stream texts among the variants (cross-talk between equal ones would not show). */
  distinct_references: string;
  /** Differences at a near-tie of the two best tokens (batched float sums), not cross-talk. */
  numerical_ties: number;
  /** Streams that were running on the killed node, and the longest wait for their error chunk. */
  cut_by_kill: number;
  error_after_kill_ms_max: number;
  memory_mb: Record<string, { before: number; after: number; peak: number }>;
  targets: Record<string, { target: string; met: boolean }>;
}

const ROOT = resolve(import.meta.dirname, '../..');
const FIXTURE = join(ROOT, 'test/fixtures/stories260k');
const BIN = join(ROOT, 'bin/versa.js');
const STREAMS = 64;
const PROMPTS = ['Once upon a time', 'The little dog', 'Lily wanted to', 'One day, a bird'];
const MAX_TOKENS = 96;

interface Variant {
  model: string;
  prompt: string;
  /** The single-stream reference: text, each token's offset, and the gap between its two best logprobs. */
  text: string;
  offsets: number[];
  margins: number[];
}

/**
 * `versa bench chaos`: the reliability campaign's load, replayed. Two compute nodes (stories260k)
 * and the Node edge (`versa edge`), each its own process; 64 concurrent streams over the base and
 * ten adapters (VLM and LoRA), one API key per stream; a third of the way in, one node is killed
 * (SIGKILL). Every stream must end with [DONE] or an error chunk; every completed stream's text
 * must be its variant's single-stream text; RSS of each process is sampled throughout.
 */
export async function benchChaos(
  opts: { seconds?: number; threads?: number; log?: (line: string) => void } = {},
): Promise<ChaosResult> {
  const log = opts.log ?? (() => {});
  const seconds = opts.seconds ?? 45;
  const dir = mkdtempSync(join(tmpdir(), 'versa-chaos-'));
  const children: ChildProcess[] = [];
  try {
    const home = join(dir, 'home');
    const adminKey = generateKey();
    const keys = Array.from({ length: STREAMS }, () => generateKey());
    const { registry } = openLocalRegistry(home);
    await importLocalModel(registry, { path: join(FIXTURE, 'model.bin'), name: 'stories260k' });
    for (const [i, key] of keys.entries())
      await createApiKey(registry, { tenant: 'default', name: `stream-${i}`, scopes: ['generate'], key });
    registry.close();
    mkdirSync(join(home, 'blobs'), { recursive: true }); // the nodes read adapter files from it

    log('starting two compute nodes and the edge, each its own process');
    const token = randomBytes(24).toString('base64url');
    const env = { ...process.env, VERSA_COMPUTE_TOKEN: token };
    const computeArgs = [
      '--model',
      join(FIXTURE, 'model.bin'),
      '--blobs',
      join(home, 'blobs'),
      '--threads',
      String(opts.threads ?? 1),
    ];
    const nodes = await Promise.all([0, 1].map(() => start(['compute', ...computeArgs, '--port', '0'], env)));
    children.push(...nodes.map((n) => n.child));
    const edge = await start(['edge', '--port', '0', '--home', home], {
      ...env,
      VERSA_API_KEY: adminKey,
      COMPUTE_NODES: JSON.stringify(nodes.map((n) => n.url)),
    });
    children.push(edge.child);

    const models = [
      'stories260k',
      ...(await publishAdapters(new RegistryClient({ url: edge.url, key: adminKey }), dir)),
    ];
    log(`single-stream references: ${models.length} models x ${PROMPTS.length} prompts`);
    const variants: Variant[] = [];
    for (const model of models)
      for (const prompt of PROMPTS) variants.push(await reference(edge.url, adminKey, model, prompt));

    const processes = { edge: edge.child, node_a: nodes[0].child, node_b: nodes[1].child };
    const memory = Object.fromEntries(
      Object.entries(processes).map(([name, p]) => [name, { before: rssMb(p), after: 0, peak: rssMb(p) }]),
    );
    const sampler = setInterval(() => {
      for (const [name, p] of Object.entries(processes)) memory[name].peak = Math.max(memory[name].peak, rssMb(p));
    }, 500);

    log(`${STREAMS} concurrent streams for ${seconds} s; node B is killed (SIGKILL) at ${Math.round(seconds / 3)} s`);
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let killedAt = Infinity;
    const killer = setTimeout(
      () => {
        killedAt = performance.now();
        nodes[1].child.kill('SIGKILL');
        log('node B killed');
      },
      (seconds * 1000) / 3,
    );
    const outcomes: Array<{ variant: Variant; started: number; outcome: StreamOutcome }> = [];
    await Promise.all(
      keys.map(async (key, w) => {
        for (let k = 0; performance.now() < end; k++) {
          const variant = variants[(w + k * 7) % variants.length];
          const started = performance.now();
          const body = { model: variant.model, prompt: variant.prompt, max_tokens: MAX_TOKENS, temperature: 0 };
          outcomes.push({ variant, started, outcome: await streamCompletion(edge.url, key, body, 60_000) });
        }
      }),
    );
    clearTimeout(killer);
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 1000));
    for (const [name, p] of Object.entries(processes)) memory[name].after = rssMb(p);

    const errorsByCode: Record<string, number> = {};
    let [completed, lost, crossTalk, ties, cut, errorAfterKill] = [0, 0, 0, 0, 0, 0];
    for (const { variant, started, outcome } of outcomes) {
      if (outcome.kind === 'lost') lost++;
      else if (outcome.kind === 'error') {
        errorsByCode[outcome.code] = (errorsByCode[outcome.code] ?? 0) + 1;
        if (started < killedAt && outcome.at >= killedAt) {
          cut++;
          errorAfterKill = Math.max(errorAfterKill, outcome.at - killedAt);
        }
      } else {
        completed++;
        const verdict = compare(variant, outcome.text);
        if (verdict === 'tie') ties++;
        else if (verdict === 'different') crossTalk++;
      }
    }
    const honest = Object.values(errorsByCode).reduce((a, b) => a + b, 0);
    return {
      streams: STREAMS,
      seconds,
      setup:
        `2 compute nodes (stories260k, ${opts.threads ?? 1} thread(s) each) behind versa edge; ` +
        `${models.length} models ` +
        `(base, 2 fixture adapters, 8 seeded random VLM/LoRA adapters) x ${PROMPTS.length} prompts, ` +
        `greedy, ${MAX_TOKENS} tokens`,
      completed,
      honest_errors: honest,
      errors_by_code: errorsByCode,
      lost,
      cross_talk: crossTalk,
      distinct_references: `${new Set(variants.map((v) => v.text)).size} of ${variants.length}`,
      numerical_ties: ties,
      cut_by_kill: cut,
      error_after_kill_ms_max: Math.round(errorAfterKill),
      memory_mb: memory,
      targets: {
        lost: { target: '0', met: lost === 0 },
        cross_talk: { target: '0', met: crossTalk === 0 },
      },
    };
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts `versa ARGS` and waits for the URL it prints. */
export function start(args: string[], env: NodeJS.ProcessEnv): Promise<{ url: string; child: ChildProcess }> {
  return announced(
    spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
    `versa ${args[0]}`,
  );
}

/** A server process started with piped output, once it prints its URL (its first line); `name` says who failed. */
export async function announced(child: ChildProcess, name: string): Promise<{ url: string; child: ChildProcess }> {
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((done, fail) => {
    child.stdout!.once('data', (d) => done(String(d).trim()));
    child.once('exit', (code) => fail(new Error(`${name} exited ${code}: ${stderr.trim()}`)));
  });
  return { url, child };
}

/** The two fixture adapters and eight seeded random ones (VLM and LoRA), published; returns their names. */
async function publishAdapters(client: RegistryClient, dir: string): Promise<string[]> {
  const config = readLlama2cConfig(join(FIXTURE, 'model.bin'));
  const modules = linearModules(config)
    .map((m) => m.name)
    .filter((name) => /q_proj|v_proj/.test(name));
  const folders: Record<string, string> = {
    'vlm-max': join(FIXTURE, 'adapters/vlm-max'),
    'lora-max': join(FIXTURE, 'adapters/lora-max'),
  };
  for (let i = 0; i < 4; i++) {
    writeVlmAdapter((folders[`vlm-${i}`] = join(dir, `vlm-${i}`)), config, 16, 100 + i);
    writeLoraAdapter((folders[`lora-${i}`] = join(dir, `lora-${i}`)), config, 4, modules, 200 + i);
  }
  for (const [name, folder] of Object.entries(folders))
    await publishFolder(client, folder, name, { base: 'stories260k@1' });
  return Object.keys(folders);
}

/** A variant's single-stream output, with each token's offset and logprob margin (to tell a near-tie). */
async function reference(url: string, key: string, model: string, prompt: string): Promise<Variant> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0, logprobs: 2 }),
  });
  if (!res.ok) throw new Error(`reference for ${model} failed: HTTP ${res.status} ${await res.text()}`);
  const choice = ((await res.json()) as { choices: unknown[] }).choices[0] as {
    text: string;
    logprobs: { text_offset: number[]; top_logprobs: Array<Record<string, number>> };
  };
  const margins = choice.logprobs.top_logprobs.map((top) => {
    const [a, b] = Object.values(top).sort((x, y) => y - x);
    return b === undefined ? Infinity : a - b;
  });
  return { model, prompt, text: choice.text, offsets: choice.logprobs.text_offset, margins };
}

/** 'same', a difference at a near-tie of the reference's two best tokens, or a real difference. */
function compare(v: Variant, text: string): 'same' | 'tie' | 'different' {
  if (text === v.text) return 'same';
  let at = 0;
  while (at < text.length && text[at] === v.text[at]) at++;
  const token = v.offsets.findLastIndex((offset) => offset - v.offsets[0] <= at);
  return token >= 0 && v.margins[token] < 1e-3 ? 'tie' : 'different';
}

/** Resident memory of a child process in MB (Linux /proc; 0 once it has exited). */
function rssMb(child: ChildProcess): number {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
    return kb ? Math.round(Number(kb) / 1024) : 0;
  } catch {
    return 0;
  }
}
