import type { Command } from 'commander';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- API JSON, printed as it comes */

const path = (id: string) => `/v1/experiments/${encodeURIComponent(id)}`;
const fmt = (x: number | null | undefined, digits = 3) => (x === null || x === undefined ? '-' : x.toPrecision(digits));
const range = (r: [number, number] | null | undefined) => (r ? `[${fmt(r[0])}, ${fmt(r[1])}]` : '-');

/** `versa experiments ls|show|promote|stop`: A/B experiments from the command line. */
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
      e.arms.map((a: any) => `${a.name}=v${a.resolved_version ?? a.version ?? a.alias}:${a.weight}`).join(' '),
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
    experiments
      .command('promote')
      .description("move the adapter's production alias to ARM's version and stop the experiment")
      .argument('<id>')
      .argument('<arm>'),
  ).action(async (id: string, arm: string, o: RegistryOptions) => {
    const r = await clientOf(o).json('POST', `${path(id)}/promote`, { arm });
    if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
    process.stdout.write(
      `${r.experiment.adapter}@production: ${r.previous_version ?? '(new)'} -> ${r.version}; ` +
        `${r.experiment.id} stopped\n`,
    );
  });

  withRegistryOptions(experiments.command('stop').description('stop an experiment').argument('<id>')).action(
    async (id: string, o: RegistryOptions) => {
      const r = await clientOf(o).json('PATCH', path(id), { status: 'stopped' });
      if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
      process.stdout.write(`${r.id} stopped\n`);
    },
  );
}
