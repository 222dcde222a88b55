import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { boundedLabel } from '../util/bounded-labels.ts';
import type { CacheEvents } from './adapter-cache.ts';

/** The compute node's Prometheus metrics (prom-client), served at /metrics. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'versa_compute_' });
  const m = {
    registry,
    /** The `adapter` label of an adapter id: its own for the first MAX_ADAPTER_LABELS ids this node sees. */
    adapterLabel: boundedLabel(MAX_ADAPTER_LABELS),
    queueDepth: new Gauge({
      name: 'versa_queue_depth',
      help: 'Requests waiting for a batch row',
      registers: [registry],
    }),
    activeRows: new Gauge({ name: 'versa_active_rows', help: 'Rows in the running batch', registers: [registry] }),
    batchSize: new Histogram({
      name: 'versa_batch_size',
      help: 'Rows decoded per step',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'versa_generated_tokens_total',
      help: 'Tokens generated',
      labelNames: ['adapter'],
      registers: [registry],
    }),
    tokensPerSecond: new Gauge({
      name: 'versa_tokens_per_second',
      help: 'Generated tokens per second over the last steps',
      registers: [registry],
    }),
    ttft: new Histogram({
      name: 'versa_time_to_first_token_seconds',
      help: 'Time from request to first token',
      labelNames: ['adapter'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    interToken: new Histogram({
      name: 'versa_inter_token_latency_seconds',
      help: 'Time between consecutive tokens of a stream',
      labelNames: ['adapter'],
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
      registers: [registry],
    }),
    requests: new Counter({
      name: 'versa_requests_total',
      help: 'Generation requests by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    cacheHits: new Counter({
      name: 'versa_adapter_cache_hits_total',
      help: 'Requests whose adapter was resident',
      labelNames: ['adapter'],
      registers: [registry],
    }),
    cacheMisses: new Counter({
      name: 'versa_adapter_cache_misses_total',
      help: 'Requests whose adapter was not resident',
      labelNames: ['adapter'],
      registers: [registry],
    }),
    cacheLoads: new Counter({
      name: 'versa_adapter_cache_loads_total',
      help: 'Adapter loads (fetch, verify, register)',
      labelNames: ['adapter'],
      registers: [registry],
    }),
    cacheEvictions: new Counter({
      name: 'versa_adapter_cache_evictions_total',
      help: 'Adapters evicted',
      labelNames: ['adapter'],
      registers: [registry],
    }),
    cacheBytes: new Gauge({
      name: 'versa_adapter_cache_bytes',
      help: 'Bytes of resident adapters',
      registers: [registry],
    }),
  };
  return m;
}

export type ComputeMetrics = ReturnType<typeof createMetrics>;

const MAX_ADAPTER_LABELS = 64;

export function cacheEvents(m: ComputeMetrics): CacheEvents {
  return {
    hit: (id) => m.cacheHits.inc({ adapter: m.adapterLabel(id) }),
    miss: (id) => m.cacheMisses.inc({ adapter: m.adapterLabel(id) }),
    load: (id) => m.cacheLoads.inc({ adapter: m.adapterLabel(id) }),
    evict: (id) => m.cacheEvictions.inc({ adapter: m.adapterLabel(id) }),
    bytes: (total) => m.cacheBytes.set(total),
  };
}
