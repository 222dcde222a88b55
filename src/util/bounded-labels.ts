/**
 * A metric label whose values come from requests (adapter ids, error codes): each value keeps its
 * own label for the first `max` distinct values seen, later ones share "other", so what callers
 * send cannot grow a metrics page (or a time-series store) without bound.
 */
export function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= max) return OTHER;
    seen.add(value);
    return value;
  };
}

export const OTHER = 'other';
