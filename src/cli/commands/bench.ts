import type { Command } from 'commander';
import { parse } from '../output.ts';

/** `versa bench engine|compute`: performance figures, reported as ratios measured in the same run. */
export function register(program: Command): void {
  const bench = program.command('bench').description('measure performance (not part of npm test)');
  bench
    .command('engine')
    .description('decode/prefill speed, roofline ratio and adapter overheads on a GPT-2-small-sized model')
    .option('--json', 'print one JSON object')
    .option('--threads <n>', 'CPU threads (default: all cores)', parse.int(1))
    .action(async (o: { json?: boolean; threads?: number }) => {
      const { benchEngine } = await import('../../bench/engine.ts');
      const result = await benchEngine({ threads: o.threads, log: (line) => process.stderr.write(`bench: ${line}\n`) });
      if (o.json) return void process.stdout.write(`${JSON.stringify(result)}\n`);
      printTable(result);
    });

  bench
    .command('compute')
    .description('aggregate tokens/s and time to first token at 1-64 concurrent streams on one and on 16 adapters')
    .option('--json', 'print one JSON object')
    .option('--threads <n>', 'CPU threads (default: all cores)', parse.int(1))
    .action(async (o: { json?: boolean; threads?: number }) => {
      const { benchCompute } = await import('../../bench/compute.ts');
      const result = await benchCompute({ threads: o.threads, log: (line) => process.stderr.write(`bench: ${line}\n`) });
      if (o.json) return void process.stdout.write(`${JSON.stringify(result)}\n`);
      printTable(result);
    });
}

function printTable(result: object & { targets?: Record<string, { target: string; met: boolean }> }): void {
  const { targets = {}, ...figures } = result;
  for (const [key, value] of Object.entries(figures)) {
    const t = targets[key];
    const verdict = t ? `  (target ${t.target}: ${t.met ? 'met' : 'NOT met'})` : '';
    process.stdout.write(`${key.padEnd(24)} ${typeof value === 'object' ? JSON.stringify(value) : value}${verdict}\n`);
  }
}
