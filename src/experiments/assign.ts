import { unitInterval } from '../util/unit-interval.ts';

/**
 * Sticky assignment of units (users) to experiment arms, with no shared state: every edge
 * instance computes the same arm from the experiment's seed and the unit alone.
 *
 * Weighted rendezvous hashing: each arm draws u = H(seed, unit, arm) in (0, 1) and scores
 * -weight / ln(u); the highest score wins. Arm a wins with probability weight_a / sum(weights),
 * and when one arm's weight changes only that arm gains or loses units: ramping a treatment from
 * 10 % to 20 % moves exactly the units it gains, and no unit moves between untouched arms.
 */
/** A request's place in a running experiment: what resolution chose and what its events record. */
export interface ArmAssignment {
  id: string;
  arm: string;
  /** The arm's position (0 = control). */
  armIndex: number;
  unit: string;
  /** No `user` and no x-versa-unit: the request is its own unit (its completion id). */
  perRequest: boolean;
  /** The experiment's weight period when the arm was chosen (SRM over ramps). */
  period: number;
}

export interface Arm {
  name: string;
  weight: number;
}

export async function assignArm<A extends Arm>(seed: string, unit: string, arms: readonly A[]): Promise<A> {
  if (!arms.length) throw new Error('an experiment needs at least one arm');
  let best = arms[0];
  let bestScore = -Infinity;
  for (const arm of arms) {
    if (!(arm.weight > 0)) continue;
    const score = -arm.weight / Math.log(await unitInterval(`${seed}\u0000${unit}\u0000${arm.name}`));
    if (score > bestScore) {
      best = arm;
      bestScore = score;
    }
  }
  return best;
}
