/**
 * Stop strings over streamed text: text that might be the start of a stop string is held back
 * until it is clear either way, so a stop string never reaches the client, even split over tokens.
 */
export class StopMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds generated text; returns what may be emitted now and whether a stop string was hit. */
  push(delta: string): { emit: string; stopped: boolean } {
    const text = this.held + delta;
    let at = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      return { emit: text.slice(0, at), stopped: true };
    }
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, text.length); n > keep; n--) {
        if (text.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.held = text.slice(text.length - keep);
    return { emit: text.slice(0, text.length - keep), stopped: false };
  }

  /** At the end of generation, held-back text turned out not to be a stop string. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }
}
