import type { Adapter } from '../adapters/read.ts';

/**
 * Which adapters share a run. A run feeds one bank shelf, padded to its largest adapter: every row
 * of a small adapter on a shelf with a 20x larger one pays the large one's work. Apart, each shelf
 * is one more run, which reads the base model's weights once more. So adapters are sorted into size
 * classes (powers of two of their parameters) and adjacent classes share a shelf while padding is
 * the cheaper of the two.
 */

/** The class of rows without an adapter: they run on any shelf at no cost. */
const BASE_CLASS = -1;

/** An adapter's size class, ceil(log2(parameters)): adapters within 2x of each other share one. */
export function sizeClass(adapter: Adapter | undefined): number {
  return adapter ? Math.ceil(Math.log2(Math.max(2, adapter.manifest.params))) : BASE_CLASS;
}

/**
 * What one more run costs, in passes over the base weights: besides reading them, a run builds its
 * inputs, attends over the cache and launches every op once. A guess on the safe side (splitting
 * a step into more runs is the costlier mistake for ordinary adapters); the development machine
 * was too noisy to measure it finely.
 */
export const RUN_COST = 8;

/**
 * The shelf of each size class (the smallest class of its group). Classes are taken smallest first;
 * the next one joins the current group when padding the group's slots up to it costs no more than
 * a run of its own: slots x (2^next - 2^largest) <= RUN_COST x baseParams. An unknown base cost
 * (undefined) puts every class on one shelf.
 */
export function shelvesOf(slotsByClass: ReadonlyMap<number, number>, baseParams?: number): Map<number, number> {
  const shelves = new Map<number, number>();
  let shelf = 0;
  let largest = 0;
  let slots = 0;
  for (const c of [...slotsByClass.keys()].filter((c) => c !== BASE_CLASS).sort((a, b) => a - b)) {
    const padding = slots * (2 ** c - 2 ** largest);
    if (!slots || (baseParams !== undefined && padding > RUN_COST * baseParams)) {
      shelf = c;
      slots = 0;
    }
    largest = c;
    slots += slotsByClass.get(c)!;
    shelves.set(c, baseParams === undefined ? 0 : shelf);
  }
  return shelves;
}
