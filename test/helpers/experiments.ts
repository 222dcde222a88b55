import type { RegistryClient } from '../../registry/client.ts';
import type { RegistryDb } from '../../registry/db/index.ts';
import { publishFolder } from '../../registry/local.ts';
import { servedStatements, type Served } from '../../src/experiments/aggregates.ts';
import { histogramBucket } from '../../src/experiments/stats.ts';
import { fixture } from './fixtures.ts';

/**
 * Writes served requests into an experiment's aggregates through the same statements the edge
 * runs after each completion: for traffic a test cannot make for real (thousands of units, an arm
 * made deliberately slow). Each request: one unit, arm, latency and tokens; it counts only if the
 * experiment is running and not killed, like the edge's.
 */
export async function serveRequests(
  registry: RegistryDb,
  experimentId: string,
  requests: Array<{ unit: string; arm: number; latencyMs?: number; error?: boolean; tokens?: number; period?: number }>,
  at = new Date(),
): Promise<void> {
  const statements = requests.flatMap((r) => {
    const latency = r.latencyMs ?? 100;
    const served: Served = {
      experimentId,
      unit: r.unit,
      arm: r.arm,
      period: r.period ?? 0,
      perRequest: false,
      at,
      requests: 1,
      errors: r.error ? 1 : 0,
      tokens: { prompt: 4, completion: r.tokens ?? 8 },
      latencyMs: r.error ? 0 : latency,
      ttftMs: r.error ? 0 : latency / 4,
      latencyBuckets: new Map(r.error ? [] : [[histogramBucket(latency), 1]]),
      ttftBuckets: new Map(r.error ? [] : [[histogramBucket(latency / 4), 1]]),
    };
    return servedStatements(registry.db, served);
  });
  // One batch per few hundred statements (D1 batches are one transaction each).
  for (let i = 0; i < statements.length; i += 400) await registry.atomic(statements.slice(i, i + 400));
}

/** Polls `ok` until it holds (the edge writes usage and exposure events after answering). */
export async function until(ok: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out waiting for events to be written');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A second version of the product's vlm-max (its files again), for experiments of v2 against v1. */
export async function publishVlmMaxV2(client: RegistryClient): Promise<void> {
  await publishFolder(client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
    base: 'stories260k@1',
    description: 'v2',
  });
}

/** A running 50/50 experiment of vlm-max v2 (candidate) against v1 (control); `fields` add or replace fields. */
export function startVlmMaxExperiment(client: RegistryClient, fields: Record<string, unknown> = {}) {
  return client.json('POST', '/v1/experiments', {
    name: 'vlm-max v2 vs v1',
    adapter: 'vlm-max',
    status: 'running',
    arms: [
      { name: 'control', version: 1, weight: 50 },
      { name: 'candidate', version: 2, weight: 50 },
    ],
    ...fields,
  });
}

/** One running experiment per adapter: stops vlm-max's and puts production back on v1, so a test starts from none. */
export async function resetVlmMax(client: RegistryClient): Promise<void> {
  for (const e of (await client.json('GET', '/v1/experiments?adapter=vlm-max')).data)
    if (e.status === 'running') await client.json('PATCH', `/v1/experiments/${e.id}`, { status: 'stopped' });
  await client.json('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 });
}

/** vlm-max v2 and a running 50/50 experiment of it against v1; the experiment's id. */
export async function vlmMaxExperiment(client: RegistryClient): Promise<string> {
  await publishVlmMaxV2(client);
  return (await startVlmMaxExperiment(client)).id;
}
