/**
 * Counts the events the edge writes and those it could not write (a database error after the
 * response: nobody is left to tell). Failures are never silent: each is counted (GET /v1/stats)
 * and logged, at most once a minute, with how many failed since the last line.
 */
export class EventLog {
  written = 0;
  failed = 0;
  private unlogged = 0;
  private lastLog = -Infinity;

  constructor(
    private readonly log: (line: string) => void = (line) => console.error(line),
    private readonly clock: () => number = Date.now,
  ) {}

  /** Runs one write of `events` events; resolves either way (the failure is counted and logged). */
  async write(events: number, work: () => Promise<void>): Promise<boolean> {
    try {
      await work();
      this.written += events;
      return true;
    } catch (e) {
      this.failed += events;
      this.unlogged += events;
      const now = this.clock();
      if (now - this.lastLog >= 60_000) {
        this.lastLog = now;
        this.log(
          `versa: ${this.unlogged} usage/exposure/feedback event(s) could not be written ` +
            `(${this.failed} since start): ${(e as Error).message}`,
        );
        this.unlogged = 0;
      }
      return false;
    }
  }

  stats() {
    return { written: this.written, failed: this.failed };
  }
}
