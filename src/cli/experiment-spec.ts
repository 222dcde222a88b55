import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';

/**
 * The flags that describe an experiment for `versa experiments create|update`. They build the
 * API's JSON body (POST /v1/experiments, PATCH /v1/experiments/ID), which `--file` may give whole;
 * the registry checks the rest (names, bounds, one running experiment per adapter).
 */

interface Arm {
  name: string;
  version?: number;
  alias?: string;
  weight: number;
}

type Metric =
  { name: string; kind: 'binary' } | { name: string; kind: 'scale' | 'continuous'; min: number; max: number };

export interface SpecOptions {
  name?: string;
  arm?: Arm[];
  metric?: Metric[];
  guardrail?: Record<string, number>;
  autoPromote?: boolean;
}

const ARM_FORM = 'NAME=version:N:WEIGHT or NAME=alias:ALIAS:WEIGHT';
const METRIC_FORM = 'NAME:binary, NAME:scale:MIN:MAX or NAME:continuous:MIN:MAX';

function number(text: string | undefined, form: string): number {
  const n = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isFinite(n))
    throw new InvalidArgumentError(`expected ${form}`);
  return n;
}

function arm(value: string, previous: Arm[] = []): Arm[] {
  const m = /^([^=]+)=(version|alias):([^:]+):([^:]+)$/.exec(value);
  if (!m || (m[2] === 'version' && !/^\d+$/.test(m[3]))) throw new InvalidArgumentError(`expected ${ARM_FORM}`);
  const target = m[2] === 'version' ? { version: Number(m[3]) } : { alias: m[3] };
  return [...previous, { name: m[1], ...target, weight: number(m[4], ARM_FORM) }];
}

function metric(value: string, previous: Metric[] = []): Metric[] {
  const [name, kind, min, max, ...rest] = value.split(':');
  if (!name || rest.length) throw new InvalidArgumentError(`expected ${METRIC_FORM}`);
  if (kind === 'binary' && min === undefined) return [...previous, { name, kind }];
  if (kind !== 'scale' && kind !== 'continuous') throw new InvalidArgumentError(`expected ${METRIC_FORM}`);
  return [...previous, { name, kind, min: number(min, METRIC_FORM), max: number(max, METRIC_FORM) }];
}

function guardrail(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const [name, limit, ...rest] = value.split('=');
  const form = 'NAME=LIMIT, e.g. error_rate=0.01';
  if (!name || rest.length) throw new InvalidArgumentError(`expected ${form}`);
  return { ...previous, [name]: number(limit, form) };
}

/** The options `create` and `update` share. */
export function withSpecOptions(cmd: Command): Command {
  return cmd
    .option('--name <text>', 'experiment name')
    .option('--arm <spec>', `an arm, ${ARM_FORM} (repeat; the first arm is the control)`, arm)
    .option('--metric <spec>', `an outcome metric, ${METRIC_FORM} (repeat; the first is primary)`, metric)
    .option(
      '--guardrail <name=limit>',
      'tolerated regression vs control (repeat): error_rate (absolute), p95_latency, tokens_per_request (relative)',
      guardrail,
    )
    .option('--auto-promote', 'promote the winning arm when the primary metric decides');
}

/** The body fields the flags give, and only those (a PATCH changes only what it names). */
export function specOf(o: SpecOptions): Record<string, unknown> {
  return {
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.arm ? { arms: o.arm } : {}),
    ...(o.metric ? { metrics: o.metric } : {}),
    ...(o.guardrail ? { guardrails: o.guardrail } : {}),
    ...(o.autoPromote !== undefined ? { auto_promote: o.autoPromote } : {}),
  };
}

/** A JSON spec file: the API's body, as an object. */
export function readSpecFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read --file ${file}: ${(e as Error).message}`, { cause: e });
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw new Error(`--file ${file} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
    throw new Error(`--file ${file} must hold a JSON object (the body of POST /v1/experiments)`);
  return spec as Record<string, unknown>;
}

/** `90,10`: the arms' new weights, in order. */
export function weights(value: string): number[] {
  const list = value.split(',').map((w) => w.trim());
  if (list.some((w) => w === '' || !Number.isFinite(Number(w)) || Number(w) < 0))
    throw new InvalidArgumentError('expected comma-separated weights, one per arm, e.g. 90,10');
  return list.map(Number);
}
