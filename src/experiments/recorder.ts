import type { RegistryDb } from '../../registry/db/index.ts';
import { appendEvents, countedEventStatement, type EventInput } from '../../registry/queries/events.ts';
import type { ArmAssignment } from './assign.ts';
import { servedCounts, servedStatements } from './aggregates.ts';
import { evaluateExperiment } from './evaluate.ts';
import type { EventLog } from './event-log.ts';
import { deferredWrites } from './write-batch.ts';
import { histogramBucket } from './stats.ts';
import { getExperiment } from './store.ts';

/** What the recorder needs of the edge: where events go, and how work runs after the response. */
export interface RecorderContext {
  registry: RegistryDb;
  /** Counts written and failed event writes (never silently dropped). */
  events: EventLog;
  /** When each experiment's guardrails were last evaluated after a request (ms). */
  evaluatedAt: Map<string, number>;
  /** Runs work after the response is on its way (waitUntil on Workers). */
  defer(work: Promise<unknown>): void;
  /** A guardrail killed an experiment, or a promotion stopped it: cached routing must be dropped. */
  experimentChanged(): void;
}

/** One completion as its events name it: who asked, what served it, and its experiment arm, if any. */
export interface ServedCompletion {
  completionId: string;
  tenantId: string;
  keyId: string;
  adapter: { name: string; version: number } | null;
  base: string;
  experiment?: ArmAssignment;
  stream: boolean;
}

/** How a completion ended: its usage event's data. */
interface CompletionUsage extends Record<string, unknown> {
  prompt_tokens: number;
  completion_tokens: number;
  /** Until the first token (meaningless when the request failed before it: `status` is set then). */
  ttft_ms: number;
  total_ms: number;
  stream: boolean;
  node?: string;
}

export interface UsageRecorder {
  /** The first token is on its way (from `node`): the unit's exposure is written. */
  firstToken(node: string | undefined): void;
  /**
   * The completion ended, whatever the end (`data`: its finish_reason, or its error and status):
   * its usage event and experiment aggregates are written, and its usage is returned.
   */
  end(tokens: { prompt: number; completion: number }, data: Record<string, unknown>): CompletionUsage;
}

/**
 * Records a completion: its experiment exposure (after its first token), its usage event and the
 * aggregates it updates (at the end), then, at most every 30 s per experiment, the guardrails.
 * Every write happens after the response is on its way.
 */
export function usageRecorder(ctx: RecorderContext, served: ServedCompletion): UsageRecorder {
  const registry = deferredWrites(ctx.registry);
  const e = served.experiment;
  const base: Omit<EventInput, 'type'> = {
    tenantId: served.tenantId,
    keyId: served.keyId,
    adapter: served.adapter?.name ?? null,
    adapterVersion: served.adapter?.version ?? null,
    base: served.base,
    experimentId: e?.id ?? null,
    arm: e?.arm ?? null,
    unit: e?.unit ?? null,
    completionId: served.completionId,
  };
  // Every write starts a macrotask after it is asked for (see deferredWrites), counted by the event log.
  const record = (events: number, write: () => Promise<void>) => ctx.defer(ctx.events.write(events, write));
  const started = Date.now();
  // The exposure is written once the first token is on its way (or the request ended without one).
  let exposed = !e;
  const expose = () => {
    if (exposed) return;
    exposed = true;
    const at = new Date(started);
    record(1, () => appendEvents(registry, [{ ...base, type: 'exposure', at }]));
  };
  let ttft = 0;
  let node: string | undefined;
  return {
    firstToken(from) {
      ttft = Date.now() - started;
      node = from;
      expose();
    },
    end(tokens, data) {
      expose();
      const timing = { ttft_ms: ttft, total_ms: Date.now() - started, stream: served.stream };
      const usage: CompletionUsage = {
        prompt_tokens: tokens.prompt,
        completion_tokens: tokens.completion,
        ...timing,
        ...(node ? { node } : {}),
        ...data,
      };
      // A client error (4xx: a prompt the node refuses, a busy node) says nothing about the arm: logged,
      // never counted (it would otherwise let a caller's bad requests trip an arm's error guardrail).
      if (!e || clientError(data)) {
        record(1, () => appendEvents(registry, [{ ...base, type: 'usage', data: usage }]));
        return usage;
      }
      // The usage event and its experiment aggregates, in one write; `counted` says whether it counted.
      const failed = data.error ? 1 : 0;
      const counted = {
        experimentId: e.id,
        unit: e.unit,
        arm: e.armIndex,
        period: e.period,
        perRequest: e.perRequest,
        at: new Date(started),
        requests: 1,
        errors: failed,
        tokens: { prompt: tokens.prompt, completion: tokens.completion },
        latencyMs: failed ? 0 : timing.total_ms,
        ttftMs: failed ? 0 : timing.ttft_ms,
        latencyBuckets: new Map(failed ? [] : [[histogramBucket(timing.total_ms), 1]]),
        ttftBuckets: new Map(failed ? [] : [[histogramBucket(timing.ttft_ms), 1]]),
      };
      const written = ctx.events.write(1, () =>
        registry.atomic([
          countedEventStatement(registry, { ...base, type: 'usage', data: usage }, servedCounts(counted)),
          ...servedStatements(registry.db, counted),
        ]),
      );
      ctx.defer(written.then(() => checkGuardrails(ctx, e.id)));
      return usage;
    },
  };
}

/** Guardrails and auto-promotion act without anyone reading results: at most every 30 s per experiment. */
async function checkGuardrails(ctx: RecorderContext, id: string): Promise<void> {
  const now = Date.now();
  if (now - (ctx.evaluatedAt.get(id) ?? -Infinity) < 30_000) return;
  ctx.evaluatedAt.set(id, now);
  const experiment = await getExperiment(ctx.registry.db, id);
  if (experiment?.status !== 'running') return;
  const after = (await evaluateExperiment(ctx.registry, experiment, new Date(now))).experiment;
  // A guardrail killed it, or a promotion stopped it and moved its alias: served from the next request.
  if (after.status !== experiment.status || after.killed !== experiment.killed) ctx.experimentChanged();
}

const clientError = (data: Record<string, unknown>) =>
  typeof data.status === 'number' && data.status >= 400 && data.status < 500;
