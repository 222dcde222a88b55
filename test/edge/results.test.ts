import { describe, expect, it } from 'vitest';
import { experimentResults } from '../../src/edge/generation/results.ts';
import type { Experiment } from '../../registry/queries/experiments.ts';
import type { EventRow } from '../../registry/queries/events.ts';

const experiment = {
  id: 'e1',
  name: 'ab',
  adapter: 'a',
  status: 'running',
  killed: false,
  arms: [
    { name: 'control', version: 1, alias: null, weight: 50 },
    { name: 'treatment', version: 2, alias: null, weight: 50 },
  ],
} as unknown as Experiment;

const event = (type: string, arm: string, completionId: string, data: Record<string, unknown> = {}) =>
  ({ type, arm, completionId, unit: `u-${completionId}`, data }) as unknown as EventRow;

describe('experiment results', () => {
  it('a repeated feedback on one completion replaces the earlier score', () => {
    const events = [
      event('exposure', 'control', 'c1'),
      event('usage', 'control', 'c1', { total_ms: 10 }),
      event('feedback', 'control', 'c1', { score: 0 }),
      event('feedback', 'control', 'c1', { score: 1 }),
      event('feedback', 'control', 'c1', { score: 1 }),
      event('exposure', 'control', 'c2'),
      event('usage', 'control', 'c2', { total_ms: 10 }),
      event('feedback', 'control', 'c2', { score: 0 }),
    ];
    const control = experimentResults(experiment, events).arms[0];
    expect(control.feedback).toMatchObject({ n: 2, mean: 0.5 });
  });
});
