import type { EngineClient } from '../engine/worker/client.ts';
import type { NodeBase } from '../protocol/compute.ts';
import type { AdapterCache } from './adapter-cache.ts';
import type { ComputeMetrics } from './metrics.ts';

/** What the compute node's routes share: its engine, adapter cache, metrics and admission counters. */
export interface ComputeState {
  /** The bearer token every caller but a health check must send (the edge's). */
  token: string;
  /** The base this node serves: its files' sha256 (as the registry computes it), and its name if given. */
  base: NodeBase;
  engine: EngineClient;
  cache: AdapterCache;
  metrics: ComputeMetrics;
  /** Choices admitted (running or queued in the engine) at most, n per request; beyond, 429. */
  capacity: number;
  /** Choices admitted now (a request with n > 1 counts n). */
  inflight: number;
  draining: boolean;
  defaultDeadlineMs: number;
  /** Settles when no request is in flight (for graceful shutdown). */
  idle(): Promise<void>;
  onSettled(): void;
}
