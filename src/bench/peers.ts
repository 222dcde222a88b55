import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { inspectModel } from '../engine/loaders/load.ts';
import { quantizeBlockFor } from '../engine/model/precision.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/versa.js');
const PRECISIONS = [
  { versa: 'float32', ggml: 'f32' },
  { versa: 'int8', ggml: 'q8_0' },
  { versa: 'int4', ggml: 'q4_0' },
] as const;
/** Tokens of `versa generate`'s short run: its decode speed is the difference between a long and a short run. */
const SHORT = 8;
/** The issue's targets (#20): Versa / peer, decode tokens/s (higher is better) and start-to-8-tokens wall time. */
const TARGETS = { float32: 1.0, int8: 0.9, int4: 0.8, generate8: 2 };

export interface PeersOptions {
  model?: string;
  tokenizer?: string;
  peers?: string;
  llamacpp?: string;
  rounds?: number;
  tokens?: number;
  threads?: number;
  quantizeBlock?: number;
  log: (line: string) => void;
}

/** One peer program, or why it is not measured. */
type Peer = { run: (args: string[]) => Run } | { missing: string };
interface Run {
  wallS: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string> = {}): Run {
  const t0 = performance.now();
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  const wallS = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    const why = r.error?.message ?? r.stderr.trim().split('\n').pop();
    throw new Error(`${basename(command)} ${args.join(' ')} failed: ${why}`);
  }
  return { wallS, stdout: r.stdout, stderr: r.stderr };
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);

/** llama2.c's run.c, compiled once per version of the file (cached under the temporary folder). */
function llama2c(peers: string, threads: number): Peer {
  const source = join(peers, 'llama2c/run.c');
  if (!existsSync(source)) return { missing: `no ${source}` };
  const exe = join(tmpdir(), 'versa-peers', `l2c-run-${sha(source)}`);
  if (!existsSync(exe)) {
    mkdirSync(dirname(exe), { recursive: true });
    const cc = spawnSync('cc', ['-Ofast', '-fopenmp', '-march=native', source, '-lm', '-o', exe], { encoding: 'utf8' });
    if (cc.status !== 0) return { missing: `cc could not build ${source}: ${(cc.error?.message ?? cc.stderr).trim()}` };
  }
  return { run: (args) => run(exe, args, { OMP_NUM_THREADS: String(threads) }) };
}

/**
 * llama.cpp through the peers' C harness (peers/llamacpp/README.md: prebuilt libraries from the npm package
 * @node-llama-cpp/linux-x64, and lcpp-decode built against them), with the checkpoint converted to GGUF once.
 */
function llamacpp(peers: string, dir: string): Peer {
  const exe = join(dir, 'lcpp-decode');
  const libs = join(dir, 'node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
  if (!existsSync(exe) || !existsSync(libs)) {
    return { missing: `no ${exe} built against ${libs}: set it up as ${join(peers, 'llamacpp/README.md')} says` };
  }
  return { run: (args) => run(exe, [...args, '--backends', libs]) };
}

function gguf(peers: string, dir: string, model: string, tokenizer: string, type: string): string {
  const out = join(dir, `${basename(model, '.bin')}-${sha(model)}-${type}.gguf`);
  if (!existsSync(out)) {
    const convert = join(peers, 'llamacpp/l2c-to-gguf.mjs');
    run(process.execPath, [convert, '--model', model, '--tokenizer', tokenizer, '--type', type, '--out', out]);
  }
  return out;
}

/** Bits a weight of Versa's quantized matrices: the weight, and its block's float32 scale and zero point. */
const bitsPerWeight = (bits: number, block: number) => round(bits + (32 + bits) / block);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/**
 * `versa bench peers`: batch-1 greedy decode of one llama2.c checkpoint, Versa beside llama2.c (run.c, float32)
 * and llama.cpp (F32, Q8_0, Q4_0), each run a fresh process, the order rotating every round. Versa's decode
 * tokens/s is the wall-time difference of `versa generate` for SHORT and SHORT + tokens tokens (the load
 * cancels); llama2.c reports its own ("achieved tok/s"), and so does llama.cpp's harness. Start-up is the
 * wall time of generating 8 tokens from a cold process, as `run -n 8`. Medians over the rounds.
 */
export async function benchPeers(o: PeersOptions) {
  if (!o.model) throw new Error('--model: give a llama2.c checkpoint (.bin) to run on every engine');
  const model = resolve(o.model);
  if (!existsSync(model)) throw new Error(`--model: ${model} not found`);
  const peersDir = resolve(o.peers ?? '../shared/peers');
  const besideModel = join(dirname(model), 'tokenizer.bin');
  const tokenizer = resolve(
    o.tokenizer ?? (existsSync(besideModel) ? besideModel : join(peersDir, 'llama2c/tokenizer.bin')),
  );
  const threads = o.threads ?? availableParallelism();
  const rounds = o.rounds ?? 3;
  const tokens = o.tokens ?? 256;
  // The block `versa generate` takes for this model unless told (the bits per weight printed say it).
  const block = quantizeBlockFor(inspectModel(model).config, o.quantizeBlock);
  const lcppDir = resolve(o.llamacpp ?? '/tmp/llamacpp');
  const l2c = llama2c(peersDir, threads);
  const lcpp = llamacpp(peersDir, lcppDir);
  for (const [name, peer] of Object.entries({ 'llama2.c': l2c, 'llama.cpp': lcpp })) {
    o.log(`${name}: ${'missing' in peer ? `not measured (${peer.missing})` : 'found'}`);
  }
  const loadAtStart = loadavg()[0];

  const versa = (precision: string, n: number) =>
    run(process.execPath, [
      BIN,
      'generate',
      ...['--model', model, '--tokenizer', tokenizer, '--quantize', precision === 'float32' ? 'none' : precision],
      ...['--quantize-block', String(block)],
      ...['--threads', String(threads), '--prompt-ids', '1', '--max-tokens', String(n), '--ignore-eos', '--json'],
    ]).wallS;
  const l2cArgs = (n: number) => [model, '-z', tokenizer, '-t', '0', '-n', String(n), '-i', ''];
  const achieved = (r: Run) => Number(/achieved tok\/s: ([\d.]+)/.exec(r.stderr)?.[1] ?? NaN);
  // lcpp-decode prints one JSON line; decode_tok_s is computed as llama2.c's "achieved tok/s"
  const decodeTps = (r: Run) => Number(JSON.parse(r.stdout.trim().split('\n').pop()!).decode_tok_s);
  const ggufs = new Map<string, string>();
  if ('run' in lcpp) for (const p of PRECISIONS) ggufs.set(p.ggml, gguf(peersDir, lcppDir, model, tokenizer, p.ggml));

  const samples = new Map<string, number[]>();
  const add = (key: string, value: number) => samples.set(key, [...(samples.get(key) ?? []), value]);
  for (let r = 0; r < rounds; r++) {
    for (const p of PRECISIONS) {
      const jobs: Array<() => void> = [
        () => {
          const short = versa(p.versa, SHORT);
          const decodeS = versa(p.versa, SHORT + tokens) - short;
          if (decodeS > 0) add(`versa ${p.versa}`, tokens / decodeS);
          else o.log(`versa ${p.versa}: the long run was no slower than the short one (noise): give more --tokens`);
          if (p.versa === 'float32') add('versa generate8', short);
        },
      ];
      if ('run' in lcpp) {
        const args = [ggufs.get(p.ggml)!, '--threads', String(threads), '--n', String(tokens)];
        jobs.push(() => add(`llama.cpp ${p.versa}`, decodeTps(lcpp.run(args))));
      }
      if ('run' in l2c && p.versa === 'float32') {
        jobs.push(() => {
          add('llama2.c float32', achieved(l2c.run(l2cArgs(tokens))));
          add('llama2.c generate8', l2c.run(l2cArgs(SHORT)).wallS);
        });
      }
      for (let j = 0; j < jobs.length; j++) jobs[(j + r) % jobs.length]();
      o.log(`round ${r + 1}/${rounds} ${p.versa} done`);
    }
  }
  const busy = `load average ${loadAtStart.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end`;

  const med = (key: string, digits = 1) => (samples.has(key) ? round(median(samples.get(key)!), digits) : null);
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null ? round(a / b) : null);
  const targets: Record<string, { target: string; met: boolean }> = {};
  const figures: Record<string, unknown> = {
    machine: `${availableParallelism()} cores; ${busy}`,
    setup: `${basename(model)}, batch 1, greedy from BOS, threads ${threads}, ${tokens} tokens, ${rounds} rounds`,
    // Equal footing: Q8_0 / Q4_0 take 8.5 / 4.5 bits a weight (32 weights, a float16 scale).
    'versa bits per weight': `int8 ${bitsPerWeight(8, block)}, int4 ${bitsPerWeight(4, block)} (blocks of ${block})`,
  };
  for (const p of PRECISIONS) {
    const v = med(`versa ${p.versa}`);
    const lc = med(`llama.cpp ${p.versa}`);
    const l2 = med(`llama2.c ${p.versa}`);
    const key = `${p.versa} decode tokens/s`;
    figures[key] = {
      'llama.cpp': lc,
      'llama2.c': l2,
      versa: v,
      'versa/llama.cpp': ratio(v, lc),
      'versa/llama2.c': ratio(v, l2),
    };
    const r = ratio(v, lc);
    if (r !== null) targets[key] = { target: `>= ${TARGETS[p.versa]}x llama.cpp`, met: r >= TARGETS[p.versa] };
  }
  const v8 = med('versa generate8', 3);
  const l8 = med('llama2.c generate8', 3);
  figures['generate 8 tokens, wall s'] = { 'llama2.c': l8, versa: v8, 'versa/llama2.c': ratio(v8, l8) };
  const r8 = ratio(v8, l8);
  if (r8 !== null) {
    targets['generate 8 tokens, wall s'] = {
      target: `<= ${TARGETS.generate8}x llama2.c`,
      met: r8 <= TARGETS.generate8,
    };
  }
  return { ...figures, targets };
}
