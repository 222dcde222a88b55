import { eq, sql, type SQL } from 'drizzle-orm';
import type { Db, Statement } from '../../registry/db/index.ts';
import {
  experimentFeedback,
  experimentHistogram,
  experimentMoments,
  experimentPeriods,
  experimentUnitMetrics,
  experimentUnits,
} from '../../registry/schema.ts';
import { countingNow } from './store.ts';

/**
 * Incrementally maintained experiment aggregates, written in the same atomic batch as the event
 * they come from (D1 `batch()`, a SQLite transaction), so results never re-read events:
 *
 * - experiment_units: one row per unit: the arm that first served it (it counts there only),
 *   when, and its running usage totals;
 * - experiment_unit_metrics / experiment_feedback: a unit's metric sums, a completion's current score;
 * - experiment_moments: per arm and statistic, sum x_u, x_u^2, y_u, y_u^2, x_u y_u over units, updated
 *   from the unit's old totals (x+dx)^2 = x^2 + 2x dx + dx^2: unit-level analysis in O(arms) rows;
 * - experiment_histogram: per arm, requests per log-spaced latency bucket (quantiles, p95 guardrail).
 *
 * Every statement is conditioned in SQL on the experiment running and not killed at write time,
 * so nothing served while draft, stopped or killed counts, whatever the edge believed.
 */

/** Usage of one unit in one arm: one request from the edge, or several merged (the benchmark). */
export interface Served {
  experimentId: string;
  unit: string;
  /** The arm's position (0 = control). */
  arm: number;
  period: number;
  perRequest: boolean;
  /** Start of the (first) request: the unit's exposure time if it is new. */
  at: Date;
  requests: number;
  errors: number;
  tokens: { prompt: number; completion: number };
  /** Sums over the requests that did not fail. */
  latencyMs: number;
  ttftMs: number;
  /** Requests per latency / time-to-first-token histogram bucket (requests that did not fail). */
  latencyBuckets: Map<number, number>;
  ttftBuckets: Map<number, number>;
}

const unitValue = (experimentId: string, unit: string, column: string) =>
  sql`(select ${sql.raw(column)} from experiment_units where experiment_id = ${experimentId} and unit = ${unit})`;

/** The served arm is the unit's arm (or the unit is new): what makes usage count. */
export function servedCounts(s: Pick<Served, 'experimentId' | 'unit' | 'arm'>): SQL {
  const unitArm = unitValue(s.experimentId, s.unit, 'arm');
  return sql`${countingNow(s.experimentId)} and coalesce(${unitArm}, ${s.arm}) = ${s.arm}`;
}

/** An upsert of moments adds the new sums to the old. */
const MOMENT_SUMS = {
  sx: sql.raw('sx + excluded.sx'),
  sxx: sql.raw('sxx + excluded.sxx'),
  sy: sql.raw('sy + excluded.sy'),
  syy: sql.raw('syy + excluded.syy'),
  sxy: sql.raw('sxy + excluded.sxy'),
};

/**
 * Adds (dx, dy) to a unit's (x_u, y_u) in the arm's moments of `stat`, when `where` holds: the
 * sums of squares and products move by 2 x dx + dx^2, 2 y dy + dy^2 and x dy + y dx + dx dy.
 */
function momentStatement(
  db: Db,
  m: { experimentId: string; arm: number | SQL; stat: string; dx: SQL | number; dy: SQL | number; x: SQL; y: SQL },
  where: SQL,
): Statement {
  const { experimentId, arm, stat, dx, dy, x, y } = m;
  return db
    .insert(experimentMoments)
    .select(
      sql`select ${experimentId}, ${arm}, ${stat}, d.dx, 2 * d.x * d.dx + d.dx * d.dx,
          d.dy, 2 * d.y * d.dy + d.dy * d.dy,
        d.x * d.dy + d.y * d.dx + d.dx * d.dy
        from (select ${dx} as dx, ${dy} as dy, coalesce(${x}, 0) as x, coalesce(${y}, 0) as y) d
        where ${where}`,
    )
    .onConflictDoUpdate({
      target: [experimentMoments.experimentId, experimentMoments.arm, experimentMoments.stat],
      set: MOMENT_SUMS,
    });
}

/**
 * The statistics one served request updates, as (stat, dx, dy, old x, old y, when) over the request
 * `p`, the unit's row before it `u` (null columns if new) and its arm: units per period and
 * per-request units (new units), requests per unit, errors / tokens per request, latency / ttft
 * per successful request, token totals, and requests a unit got from another arm (a ramp moved
 * it: seen, never counted there).
 */
const SERVED_STATS = [
  ["'units:' || cast(p.period as integer)", '1', '0', '0', '0', 'u.unit is null'],
  ["'requests'", '(u.unit is null)', 'p.r', '(u.unit is not null)', 'coalesce(u.requests, 0)', 'mine'],
  ["'errors'", 'p.r', 'p.err', 'coalesce(u.requests, 0)', 'coalesce(u.errors, 0)', 'mine'],
  ["'tokens'", 'p.r', 'p.tok', 'coalesce(u.requests, 0)', 'coalesce(u.tokens, 0)', 'mine'],
  ["'latency_ms'", 'p.ok', 'p.lat', 'coalesce(u.ok, 0)', 'coalesce(u.latency_ms, 0)', 'mine'],
  ["'ttft_ms'", 'p.ok', 'p.ttft', 'coalesce(u.ok, 0)', 'coalesce(u.ttft_ms, 0)', 'mine'],
  // Totals only (their squares are not kept): the dashboard's prompt / completion token counts.
  ["'prompt_tokens'", '0', 'p.ptok', '0', '0', 'mine'],
  ["'completion_tokens'", '0', 'p.ctok', '0', '0', 'mine'],
  ["'per_request_units'", '1', '0', '0', '0', 'u.unit is null and p.perreq = 1'],
  ["'crossover_requests'", '0', 'p.r', '0', '0', 'u.arm <> p.arm'],
] as const;

const pick = (column: number) =>
  `case k.k ${SERVED_STATS.map((row, k) => `when ${k} then ${row[column]}`).join(' ')} end`;

/** The parts of the one INSERT .. SELECT for every statistic (rendered once: it is built per request). */
const SERVED_MOMENTS = {
  // VALUES, not UNION: D1 caps the terms of a compound SELECT far lower than SQLite.
  stats: `select column1 as k from (values ${SERVED_STATS.map((_, k) => `(${k})`).join(', ')})`,
  columns: [
    `p.e as e, p.arm as arm, ${pick(0)} as stat, ${pick(1)} as dx, ${pick(2)} as dy, ${pick(3)} as x`,
    `${pick(4)} as y, ${pick(5).replace(/mine/g, 'coalesce(u.arm, p.arm) = p.arm')} as included`,
  ].join(', '),
  select: `d.e, d.arm, d.stat, d.dx, 2 * d.x * d.dx + d.dx * d.dx, d.dy, 2 * d.y * d.dy + d.dy * d.dy,
    d.x * d.dy + d.y * d.dx + d.dx * d.dy`,
};

/**
 * The aggregate updates for usage served to a unit (after the event rows, in one batch): the
 * moments of every statistic, the latency histograms, then the unit's own totals.
 */
export function servedStatements(db: Db, s: Served): Statement[] {
  const ok = s.requests - s.errors;
  const tokens = s.tokens.prompt + s.tokens.completion;
  const p = sql`(select ${s.experimentId} as e, ${s.unit} as unit, ${s.arm} as arm, ${s.period} as period,
    ${s.requests} as r, ${s.errors} as err, ${ok} as ok, ${tokens} as tok, ${s.latencyMs} as lat, ${s.ttftMs} as ttft,
    ${s.tokens.prompt} as ptok, ${s.tokens.completion} as ctok, ${s.perRequest ? 1 : 0} as perreq) p
    join experiments x on x.id = p.e and x.status = 'running' and x.killed = 0
    left join experiment_units u on u.experiment_id = p.e and u.unit = p.unit`;
  const m = SERVED_MOMENTS;
  const statements: Statement[] = [
    db
      .insert(experimentMoments)
      .select(
        sql`select ${sql.raw(m.select)} from (select ${sql.raw(m.columns)} from ${p} join (${sql.raw(m.stats)}) k) d
          where d.included`,
      )
      .onConflictDoUpdate({
        target: [experimentMoments.experimentId, experimentMoments.arm, experimentMoments.stat],
        set: MOMENT_SUMS,
      }),
  ];
  const buckets = [
    ...[...s.latencyBuckets].map(([b, n]) => sql`('latency', ${b}, ${n})`),
    ...[...s.ttftBuckets].map(([b, n]) => sql`('ttft', ${b}, ${n})`),
  ];
  if (buckets.length)
    statements.push(
      db
        .insert(experimentHistogram)
        .select(
          sql`select p.e, p.arm, b.column1, b.column2, b.column3 from ${p} join (values ${sql.join(buckets, sql`, `)}) b
            where coalesce(u.arm, p.arm) = p.arm`,
        )
        .onConflictDoUpdate({
          target: [
            experimentHistogram.experimentId,
            experimentHistogram.arm,
            experimentHistogram.kind,
            experimentHistogram.bucket,
          ],
          set: { count: sql.raw('count + excluded.count') },
        }),
    );
  // Last: the statements above read the unit's totals before this request.
  statements.push(
    db
      .insert(experimentUnits)
      .select(
        sql`select ${s.experimentId}, ${s.unit}, ${s.arm}, ${s.at.getTime()}, ${s.requests}, ${s.errors}, ${ok},
          ${tokens}, ${s.latencyMs}, ${s.ttftMs} where ${countingNow(s.experimentId)}`,
      )
      .onConflictDoUpdate({
        target: [experimentUnits.experimentId, experimentUnits.unit],
        set: {
          requests: sql.raw('requests + excluded.requests'),
          errors: sql.raw('errors + excluded.errors'),
          ok: sql.raw('ok + excluded.ok'),
          tokens: sql.raw('tokens + excluded.tokens'),
          latencyMs: sql.raw('latency_ms + excluded.latency_ms'),
          ttftMs: sql.raw('ttft_ms + excluded.ttft_ms'),
        },
        setWhere: sql.raw('experiment_units.arm = excluded.arm'),
      }),
  );
  return statements;
}

/**
 * A completion's score for one metric: counted when the completion was, its unit is in that arm
 * and the experiment is running and not killed; a repeat replaces the earlier score (the
 * aggregates take the difference and the count stays).
 */
export function feedbackStatements(
  db: Db,
  f: { experimentId: string; unit: string; arm: number; completionId: string; metric: string; value: number },
): Statement[] {
  const { experimentId: e, unit, arm, completionId, metric } = f;
  const old = sql`(select value from experiment_feedback where completion_id = ${completionId} and metric = ${metric})`;
  const mine = sql`experiment_id = ${e} and unit = ${unit} and metric = ${metric}`;
  const counts = sql`${countingNow(e)} and ${unitValue(e, unit, 'arm')} = ${arm}`;
  const dx = sql`(case when ${old} is null then 1 else 0 end)`;
  const dy = sql`(${f.value} - coalesce(${old}, 0))`;
  return [
    momentStatement(
      db,
      {
        experimentId: e,
        arm,
        stat: `metric:${metric}`,
        dx,
        dy,
        x: sql`(select count from experiment_unit_metrics where ${mine})`,
        y: sql`(select sum from experiment_unit_metrics where ${mine})`,
      },
      counts,
    ),
    unitMetricStatement(db, sql`${e}, ${unit}, ${metric}, ${dy}, ${dx}`, counts),
    db
      .insert(experimentFeedback)
      .select(sql`select ${completionId}, ${metric}, ${f.value} where ${counts}`)
      .onConflictDoUpdate({
        target: [experimentFeedback.completionId, experimentFeedback.metric],
        set: { value: sql.raw('excluded.value') },
      }),
  ];
}

function unitMetricStatement(db: Db, values: SQL, where: SQL): Statement {
  return db
    .insert(experimentUnitMetrics)
    .select(sql`select ${values}, null where ${where}`)
    .onConflictDoUpdate({
      target: [experimentUnitMetrics.experimentId, experimentUnitMetrics.unit, experimentUnitMetrics.metric],
      set: { sum: sql.raw('sum + excluded.sum'), count: sql.raw('count + excluded.count') },
    });
}

/** An outcome the application measured itself for a unit (conversion, task success), at `at`. */
interface MetricEvent {
  unit: string;
  metric: string;
  value: number;
  at: Date;
}

/**
 * Outcomes the application measured itself, however many, in two set-based statements (the events
 * travel as one JSON parameter: D1 binds at most 100 per statement). Each counts, in the unit's arm,
 * only if the unit was exposed before the outcome's time and the experiment runs; a unit holds one
 * value per metric (experiment_unit_metrics.outcome): a repeat replaces it, the latest `at` of a
 * call winning, so a thousand copies of one event count once.
 */
export function metricEventStatements(db: Db, experimentId: string, events: readonly MetricEvent[]): Statement[] {
  const rows = JSON.stringify(events.map((e) => [e.unit, e.metric, e.value, e.at.getTime()]));
  const e = experimentId;
  // One row per (unit, metric) that counts: the unit's arm, its value before (x, y, old outcome).
  // json_each first (CROSS JOIN keeps that order): the JSON is parsed once, each unit found by its key.
  const latest = sql`(select p.unit, p.metric, p.value, u.arm,
      row_number() over (partition by p.unit, p.metric order by p.at desc, p.i desc) as rank
    from (select json_extract(j.value, '$[0]') as unit, json_extract(j.value, '$[1]') as metric,
        json_extract(j.value, '$[2]') as value, json_extract(j.value, '$[3]') as at, j.key as i
      from json_each(${rows}) j) p
    cross join experiment_units u on u.experiment_id = ${e} and u.unit = p.unit and u.first_at <= p.at
    where ${countingNow(e)})`;
  const d = sql`(select l.unit, l.metric, l.value, l.arm, (m.outcome is null) as dx,
      l.value - coalesce(m.outcome, 0) as dy, coalesce(m.count, 0) as x, coalesce(m.sum, 0) as y
    from ${latest} l
    left join experiment_unit_metrics m on m.experiment_id = ${e} and m.unit = l.unit and m.metric = l.metric
    where l.rank = 1)`;
  return [
    // The moments first: they read the unit's sums before this write.
    db
      .insert(experimentMoments)
      .select(
        sql`select ${e}, d.arm, 'metric:' || d.metric, sum(d.dx), sum(2 * d.x * d.dx + d.dx * d.dx), sum(d.dy),
          sum(2 * d.y * d.dy + d.dy * d.dy), sum(d.x * d.dy + d.y * d.dx + d.dx * d.dy)
          from ${d} d where true group by d.arm, d.metric`,
      )
      .onConflictDoUpdate({
        target: [experimentMoments.experimentId, experimentMoments.arm, experimentMoments.stat],
        set: MOMENT_SUMS,
      }),
    db
      .insert(experimentUnitMetrics)
      .select(sql`select ${e}, d.unit, d.metric, d.dy, d.dx, d.value from ${d} d where true`)
      .onConflictDoUpdate({
        target: [experimentUnitMetrics.experimentId, experimentUnitMetrics.unit, experimentUnitMetrics.metric],
        set: {
          sum: sql.raw('sum + excluded.sum'),
          count: sql.raw('count + excluded.count'),
          outcome: sql.raw('excluded.outcome'),
        },
      }),
  ];
}

/** Everything results need: O(arms x statistics) moment rows, the histograms and the weight periods. */
export async function readAggregates(db: Db, experimentId: string) {
  const [moments, histogram, periods] = await Promise.all([
    db.select().from(experimentMoments).where(eq(experimentMoments.experimentId, experimentId)),
    db.select().from(experimentHistogram).where(eq(experimentHistogram.experimentId, experimentId)),
    db.select().from(experimentPeriods).where(eq(experimentPeriods.experimentId, experimentId)),
  ]);
  return { moments, histogram, periods };
}

export type Aggregates = Awaited<ReturnType<typeof readAggregates>>;
