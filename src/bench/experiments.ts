import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiKey } from '../../registry/auth.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import type { RegistryDb, Statement } from '../../registry/db/index.ts';
import { sqliteRegistry } from '../../registry/db/sqlite.ts';
import { eventStatements, type EventInput } from '../../registry/queries/events.ts';
import { adapters, adapterVersions, baseModels, baseModelVersions, tenants } from '../../registry/schema.ts';
import type { ModelConfig } from '../engine/model/config.ts';
import { createApp } from '../edge/app.ts';
import { metricEventStatements, servedStatements } from '../experiments/aggregates.ts';
import { assignArm } from '../experiments/assign.ts';
import { histogramBucket } from '../experiments/stats.ts';
import { createExperiment } from '../experiments/store.ts';

const UNITS = 100_000;
const REQUESTS_PER_UNIT = 10;
const TARGET_MS = 100;

/**
 * `versa bench experiments`: an experiment with 10^6 usage events over 10^5 units (10 requests
 * each, plus one application metric per unit) on SQLite, written through the same aggregate
 * statements the edge runs; then the latency of GET /v1/experiments/{id}/results through the app
 * (median of 20). Results read O(arms) aggregate rows, so the figure does not grow with events.
 */
export async function benchExperiments(opts: { log: (line: string) => void; units?: number }) {
  const units = opts.units ?? UNITS;
  const dir = mkdtempSync(join(tmpdir(), 'versa-bench-experiments-'));
  const registry = sqliteRegistry(join(dir, 'registry.db'));
  try {
    const now = new Date();
    const experimentId = await seed(registry, now);
    const key = (await createApiKey(registry, { tenant: 'bench', name: 'bench', scopes: ['read'] })).key;
    const arms = [
      { name: 'control', weight: 50 },
      { name: 'candidate', weight: 50 },
    ];

    opts.log(`writing ${units * REQUESTS_PER_UNIT} events over ${units} units ...`);
    const t0 = performance.now();
    let batch: Statement[] = [];
    const flush = async () => {
      await registry.atomic(batch);
      batch = [];
    };
    for (let u = 0; u < units; u++) {
      const unit = `user-${u}`;
      const arm = arms.indexOf(await assignArm(experimentId, unit, arms));
      const rows: EventInput[] = [];
      const latency = new Map<number, number>();
      let latencySum = 0;
      for (let i = 0; i < REQUESTS_PER_UNIT; i++) {
        const ms = 200 + ((u * 7 + i * 13) % 300) + arm * 10;
        latencySum += ms;
        latency.set(histogramBucket(ms), (latency.get(histogramBucket(ms)) ?? 0) + 1);
        rows.push({
          type: 'usage',
          experimentId,
          arm: arms[arm].name,
          unit,
          adapter: 'bench',
          adapterVersion: arm + 1,
        });
      }
      batch.push(
        ...eventStatements(registry, rows, now),
        // The unit's 10 requests merged into one update: the sums are the same as 10 single updates.
        ...servedStatements(registry.db, {
          experimentId,
          unit,
          arm,
          period: 0,
          perRequest: false,
          at: now,
          requests: REQUESTS_PER_UNIT,
          errors: 0,
          tokens: { prompt: 10 * REQUESTS_PER_UNIT, completion: 20 * REQUESTS_PER_UNIT },
          latencyMs: latencySum,
          ttftMs: latencySum / 4,
          latencyBuckets: latency,
          ttftBuckets: new Map([[histogramBucket(latencySum / 4 / REQUESTS_PER_UNIT), REQUESTS_PER_UNIT]]),
        }),
        ...metricEventStatements(registry.db, experimentId, [
          { unit, metric: 'conversion', value: (u + arm) % 3 === 0 ? 1 : 0, at: now },
        ]),
      );
      if (batch.length >= 2000) await flush();
      if ((u + 1) % 20_000 === 0) opts.log(`  ${u + 1} units`);
    }
    await flush();
    const writeSeconds = (performance.now() - t0) / 1000;

    const app = createApp({ registry, blobs: new FolderBlobStore(join(dir, 'blobs')) });
    const read = async () => {
      const t = performance.now();
      const res = await app.request(`/v1/experiments/${experimentId}/results`, {
        headers: { authorization: `Bearer ${key}` },
      });
      if (res.status !== 200) throw new Error(`results answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { arms: Array<{ units: number; requests: number }> };
      return { ms: performance.now() - t, body };
    };
    await read(); // warm
    const times: number[] = [];
    let last;
    for (let i = 0; i < 20; i++) {
      last = await read();
      times.push(last.ms);
    }
    times.sort((a, b) => a - b);
    const median = times[10];
    const events = registry.sqlite.prepare('select count(*) as n from events').get() as { n: number };
    return {
      events: events.n,
      units,
      units_counted: last!.body.arms.reduce((s, a) => s + a.units, 0),
      requests_counted: last!.body.arms.reduce((s, a) => s + a.requests, 0),
      write_seconds: Number(writeSeconds.toFixed(1)),
      results_ms_median: Number(median.toFixed(2)),
      results_ms_max: Number(times[times.length - 1].toFixed(2)),
      targets: { results_ms_median: { target: `< ${TARGET_MS} ms`, met: median < TARGET_MS } },
    };
  } finally {
    registry.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A tenant, a base model and an adapter with two versions, and a running experiment between them. */
async function seed(registry: RegistryDb, now: Date): Promise<string> {
  const db = registry.db;
  await registry.atomic([
    db.insert(tenants).values({ id: 'bench', name: 'bench', createdAt: now }),
    db.insert(baseModels).values({ id: 'bm', name: 'bench-base', tenantId: 'bench', createdAt: now }),
    db.insert(baseModelVersions).values({
      id: 'bmv',
      modelId: 'bm',
      version: 1,
      architecture: 'gpt2',
      config: {} as ModelConfig,
      params: 1,
      bytes: 1,
      sha256: '0'.repeat(64),
      createdAt: now,
    }),
    db.insert(adapters).values({ id: 'ad', name: 'bench', tenantId: 'bench', createdAt: now }),
    ...[1, 2].map((version) =>
      db.insert(adapterVersions).values({
        id: `av${version}`,
        adapterId: 'ad',
        version,
        baseVersionId: 'bmv',
        kind: 'lora',
        rank: 4,
        targetModules: [],
        taskTokens: [],
        params: 1,
        paramsPctOfBase: 0,
        bytes: 1,
        sha256: String(version).repeat(64),
        weightsFile: 'adapter_model.safetensors',
        tags: [],
        createdAt: now,
      }),
    ),
  ]);
  const [adapter] = await db.select().from(adapters);
  const e = await createExperiment(
    registry,
    adapter,
    {
      name: 'bench',
      status: 'running',
      arms: [
        { name: 'control', version: 1, weight: 50 },
        { name: 'candidate', version: 2, weight: 50 },
      ],
      metrics: [{ name: 'conversion', kind: 'binary', min: 0, max: 1 }],
    },
    { now },
  );
  return e.id;
}
