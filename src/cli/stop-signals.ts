/** How close together two deliveries of a stop signal are taken for one (see onStopSignal). */
const SAME_STOP_MS = 500;

/**
 * Runs `stop` on the first SIGINT or SIGTERM, then exits 0; a second signal later than
 * SAME_STOP_MS ends the process at once (the signal's default), as an impatient operator expects.
 * One closer than that is the same stop delivered twice, and ignored: under bin/versa.js's
 * launcher (a parent process that forwards signals, see there) a terminal's Ctrl-C or systemd's
 * stop reaches this process both directly and through the launcher. So under it the exit waits out
 * that window too: a duplicate arriving while the process exits would find no handler and kill it.
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => Promise<unknown>): void {
  const underLauncher = process.env.VERSA_LAUNCHER === String(process.ppid);
  let stoppedAt: number | undefined;
  const handle = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (stoppedAt === undefined) {
      stoppedAt = now;
      const window = underLauncher && new Promise((done) => setTimeout(done, SAME_STOP_MS));
      void Promise.all([stop(signal), window]).then(() => process.exit(0));
    } else if (now - stoppedAt > SAME_STOP_MS) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, handle);
}
