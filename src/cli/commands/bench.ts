import { Option, type Command } from 'commander';
import { EXECUTION_PROVIDERS, type ProviderChoice } from '../../engine/runtime/providers.ts';
import { parse } from '../output.ts';
import { quantizeBlock } from './runtime-options.ts';
import { DEFAULT_BLOCK } from '../../engine/weights/quantize.ts';

type Figures = object & { targets?: Record<string, { target: string; met: boolean }> };
type Bench = (opts: {
  threads?: number;
  ep?: ProviderChoice;
  log: (line: string) => void;
  model?: string;
  quantizeBlock?: number;
  precisionOnly?: boolean;
  sizeClassesOnly?: boolean;
  seconds?: number;
  units?: number;
  pairs?: number;
  worker?: boolean;
  tokenizer?: string;
  peers?: string;
  llamacpp?: string;
  rounds?: number;
  tokens?: number;
}) => Promise<Figures>;

/** `versa bench engine|compute|chaos|experiments|edge|peers`: performance figures, as ratios measured in one run. */
export function register(program: Command): void {
  const bench = program.command('bench').description('measure performance (not part of npm test)');
  const add = (name: string, description: string, load: () => Promise<Bench>) =>
    bench
      .command(name)
      .description(description)
      .option('--json', 'print one JSON object')
      .option('--threads <n>', 'CPU threads (default: all cores)', parse.int(1))
      .action(
        async (o: {
          json?: boolean;
          threads?: number;
          ep?: ProviderChoice;
          model?: string;
          quantizeBlock?: number;
          precisionOnly?: boolean;
          sizeClassesOnly?: boolean;
          structuredOnly?: boolean;
          seconds?: number;
          units?: number;
          pairs?: number;
          worker?: boolean;
          tokenizer?: string;
          peers?: string;
          llamacpp?: string;
          rounds?: number;
          tokens?: number;
        }) => {
          const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
          const result = await (await load())({ ...o, log });
          process.stdout.write(o.json ? `${JSON.stringify(result)}\n` : table(result));
        },
      );
  add(
    'engine',
    'decode/prefill speed, load time, float32 vs int8/int4, roofline ratios and adapter overheads',
    async () => (await import('../../bench/engine.ts')).benchEngine,
  )
    .addOption(epOption())
    .option('--model <path>', 'measure this checkpoint (default: a GPT-2-small-sized model with random weights)')
    .option('--quantize-block <n>', `block size of the int8/int4 runs (default ${DEFAULT_BLOCK})`, quantizeBlock)
    .option('--precision-only', 'only load time and float32/int8/int4 decode at batch 1 and 16 (quick on big models)')
    .option('--size-classes-only', "only small adapters' decode beside a 20x larger one, with and without size classes")
    .option(
      '--structured-only',
      "only structured output's token-mask cost per decode step (GPT-2's tokenizer: see --tokenizer)",
    )
    .option('--tokenizer <path>', 'with --structured-only: a GPT-2 tokenizer.json (default test/fixtures/tiny-gpt2)');
  add(
    'compute',
    'aggregate tokens/s and time to first token at 1-64 concurrent streams on one and on 16 adapters',
    async () => (await import('../../bench/compute.ts')).benchCompute,
  ).addOption(epOption());
  add(
    'chaos',
    'the reliability load: 64 streams over mixed adapters through an edge and two nodes, one killed mid-run',
    async () => (await import('../../bench/chaos.ts')).benchChaos,
  ).option('--seconds <n>', 'how long the load runs (default 45)', parse.int(5));
  add(
    'experiments',
    'latency of experiment results over 10^6 events and 10^5 units on SQLite (aggregates, not events)',
    async () => (await import('../../bench/experiments.ts')).benchExperiments,
  ).option('--units <n>', 'units, 10 requests each (default 100000)', parse.int(1));
  add(
    'edge',
    "time to first token added by the Node edge (paired with the node's own, alternating) and where it goes",
    async () => (await import('../../bench/edge.ts')).benchEdge,
  )
    .option('--pairs <n>', 'request pairs per scenario (default 100)', parse.int(1))
    .option('--worker', "the Worker on wrangler's local runtime instead, with its D1 round trips per request");
  add(
    'peers',
    'batch-1 decode beside llama2.c and llama.cpp on one llama2.c checkpoint, alternating, with ratios',
    async () => (await import('../../bench/peers.ts')).benchPeers,
  )
    .requiredOption('--model <path>', 'llama2.c checkpoint (.bin) that every engine runs')
    .option('--tokenizer <path>', "llama2.c tokenizer.bin (default: next to the model, else the peers' one)")
    .option('--peers <dir>', 'the peer harnesses: llama2c/run.c, llamacpp/ (default ../shared/peers)')
    .option('--llamacpp <dir>', "llama.cpp's harness as llamacpp/README.md sets it up (default /tmp/llamacpp)")
    .option('--rounds <n>', 'alternating rounds; the figures are medians (default 3)', parse.int(1))
    .option('--tokens <n>', 'decode tokens per measured run (default 256)', parse.int(1))
    .option('--quantize-block <n>', `block size of Versa's int8/int4 runs (default ${DEFAULT_BLOCK})`, quantizeBlock);
}

function table({ targets = {}, ...figures }: Figures): string {
  return Object.entries(figures)
    .map(([key, value]) => {
      const t = targets[key];
      const verdict = t ? `  (target ${t.target}: ${t.met ? 'met' : 'NOT met'})` : '';
      return `${key.padEnd(26)} ${typeof value === 'object' ? JSON.stringify(value) : value}${verdict}\n`;
    })
    .join('');
}

/** --ep of the benchmarks that run an engine: on a GPU provider (WebGPU) the cache and banks stay on the device. */
function epOption(): Option {
  return new Option('--ep <provider>', 'execution provider of the engines').choices(EXECUTION_PROVIDERS).default('cpu');
}
