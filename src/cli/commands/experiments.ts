import { Option, type Command } from 'commander';
import { EXPERIMENT_STATUSES } from '../../../registry/schema.ts';
import { readSpecFile, specOf, weights, withSpecOptions, type SpecOptions } from '../experiment-spec.ts';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- API JSON, printed as it comes */

const path = (id: string) => `/v1/experiments/${encodeURIComponent(id)}`;
const fmt = (x: number | null | undefined, digits = 3) => (x === null || x === undefined ? '-' : x.toPrecision(digits));
const range = (r: [number, number] | null | undefined) => (r ? `[${fmt(r[0])}, ${fmt(r[1])}]` : '-');
/** `control=v1:50` once resolved (running), `control=production:50` before (a draft's alias arm). */
const armText = (a: any) => {
  const v = a.resolved_version ?? a.version;
  return `${a.name}=${v === null ? a.alias : `v${v}`}:${a.weight}`;
};
const summary = (e: any) =>
  `${e.id} ${e.name} (${e.adapter}) ${e.status}${e.killed ? ', killed' : ''}: ${e.arms.map(armText).join(' ')}\n`;

interface CreateOptions extends RegistryOptions, SpecOptions {
  adapter?: string;
  file?: string;
  start?: boolean;
}

interface UpdateOptions extends RegistryOptions, SpecOptions {
  weights?: number[];
  status?: string;
  kill?: boolean;
}

/** `versa experiments ls|show|create|update|promote|stop`: A/B experiments from the command line. */
export function register(program: Command): void {
  const experiments = program.command('experiments').description("an adapter's A/B experiments and their results");

  withRegistryOptions(
    experiments.command('ls').description("list an adapter's experiments, newest first").argument('<adapter>'),
  ).action(async (adapter: string, o: RegistryOptions) => {
    const r = await clientOf(o).json('GET', `/v1/experiments?adapter=${encodeURIComponent(adapter)}`);
    if (o.json) return void process.stdout.write(`${JSON.stringify(r.data)}\n`);
    const rows = r.data.map((e: any) => [
      e.id,
      e.name,
      e.killed ? `${e.status} (killed)` : e.status,
      e.arms.map(armText).join(' '),
      e.started_at ?? '-',
    ]);
    process.stdout.write(table([['ID', 'NAME', 'STATUS', 'ARMS (version:weight)', 'STARTED'], ...rows]));
  });

  withRegistryOptions(
    experiments
      .command('show')
      .description('results: per-arm unit-level figures, sequential verdict, guardrails, promotable arm')
      .argument('<id>'),
  ).action(async (id: string, o: RegistryOptions) => {
    const r = await clientOf(o).json('GET', `${path(id)}/results`);
    if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
    const e = r.experiment;
    const out = [`${e.id}  ${e.name}  (${e.adapter})  ${e.status}${e.killed ? ', killed' : ''}`];
    if (e.stop_reason) out.push(`stopped: ${e.stop_reason}`);
    const rows = r.arms.map((a: any) => [
      a.arm,
      `v${a.version ?? '-'}${a.alias ? ` (${a.alias})` : ''}`,
      String(a.units),
      String(a.requests),
      fmt(a.error_rate),
      fmt(a.latency_ms.p95),
      `${fmt(a.feedback.mean)} n=${a.feedback.n}`,
      a.vs_control ? range(a.vs_control.feedback.cs95) : '-',
      a.vs_control ? fmt(a.vs_control.feedback.p_value, 2) : '-',
    ]);
    out.push(
      table([
        ['ARM', 'VERSION', 'UNITS', 'REQUESTS', 'ERRORS', 'P95 MS', r.primary_metric.toUpperCase(), 'SEQ. 95% CS', 'P'],
        ...rows,
      ]).trimEnd(),
    );
    out.push(
      `verdict (${r.verdict.metric}): ${r.verdict.arms.map((v: any) => `${v.arm} ${v.verdict}`).join(', ') || '-'}`,
    );
    const violated = r.guardrails.checks.filter((c: any) => c.violated);
    const armGuardrail = (c: any) => `${c.arm}: ${c.guardrail}`;
    out.push(
      `guardrails: ${r.guardrails.state}${violated.length ? ` (${violated.map(armGuardrail).join(', ')})` : ''}`,
    );
    out.push(`promotable: ${r.promotable ? r.promotable.arm : '-'}`);
    if (r.srm?.mismatch) out.push(`SAMPLE RATIO MISMATCH: p = ${fmt(r.srm.p_value, 2)}; do not trust these results`);
    process.stdout.write(`${out.join('\n')}\n`);
  });

  withRegistryOptions(
    withSpecOptions(
      experiments
        .command('create')
        .description('create an experiment (a draft unless --start) from flags, a JSON spec file, or both')
        .option('--adapter <name>', 'the adapter whose versions or aliases the arms are')
        .option('--file <spec.json>', 'the body of POST /v1/experiments; flags given replace its fields')
        .option('--start', 'start it now (status running): arms on aliases resolve to versions'),
    ),
  ).action(async (o: CreateOptions) => {
    const spec: Record<string, unknown> = {
      ...(o.file ? readSpecFile(o.file) : {}),
      ...specOf(o),
      ...(o.adapter ? { adapter: o.adapter } : {}),
      ...(o.start ? { status: 'running' } : {}),
    };
    const missing = ['adapter', 'name', 'arms'].filter((k) => spec[k] === undefined);
    if (missing.length)
      throw new Error(`missing ${missing.map((k) => (k === 'arms' ? '--arm' : `--${k}`)).join(', ')} (or --file)`);
    const e = await clientOf(o).createExperiment(spec);
    process.stdout.write(o.json ? `${JSON.stringify(e)}\n` : summary(e));
  });

  withRegistryOptions(
    withSpecOptions(
      experiments
        .command('update')
        .description('ramp weights, start or stop, pull or lift the kill switch; arms and metrics while a draft')
        .argument('<id>')
        .option('--weights <list>', 'new weights, one per arm in order, e.g. 90,10', weights)
        .addOption(new Option('--status <status>', 'draft, running or stopped').choices(EXPERIMENT_STATUSES))
        .option('--kill', 'kill switch on: every unit is served the control arm, nothing is counted')
        .option('--no-kill', 'kill switch off'),
      // After --auto-promote (withSpecOptions): defined first, --no-auto-promote would default it to true.
    ).option('--no-auto-promote', 'stop auto-promotion'),
  ).action(async (id: string, o: UpdateOptions) => {
    const patch = {
      ...specOf(o),
      ...(o.weights ? { weights: o.weights } : {}),
      ...(o.status ? { status: o.status } : {}),
      ...(o.kill !== undefined ? { killed: o.kill } : {}),
    };
    if (!Object.keys(patch).length)
      throw new Error('nothing to update: give --weights, --status, --kill, --no-kill, --name, --arm, ...');
    const e = await clientOf(o).updateExperiment(id, patch);
    process.stdout.write(o.json ? `${JSON.stringify(e)}\n` : summary(e));
  });

  withRegistryOptions(
    experiments
      .command('promote')
      .description("move the adapter's production alias to ARM's version and stop the experiment")
      .argument('<id>')
      .argument('<arm>'),
  ).action(async (id: string, arm: string, o: RegistryOptions) => {
    const r = await clientOf(o).promoteArm(id, arm);
    if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
    process.stdout.write(
      `${r.experiment.adapter}@production: ${r.previous_version ?? '(new)'} -> ${r.version}; ` +
        `${r.experiment.id} stopped\n`,
    );
  });

  withRegistryOptions(experiments.command('stop').description('stop an experiment').argument('<id>')).action(
    async (id: string, o: RegistryOptions) => {
      const r = await clientOf(o).updateExperiment(id, { status: 'stopped' });
      if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
      process.stdout.write(`${r.id} stopped\n`);
    },
  );
}
