import type { RegistryDb, Statement } from '../../registry/db/index.ts';

/** The registry for event writes, and what a reader waits for to see them all. */
interface Deferred {
  writes: RegistryDb;
  settled(): Promise<void>;
}

const deferred = new WeakMap<RegistryDb, Deferred>();

/**
 * The registry as the edge's event writes use it: every write starts a macrotask after it is asked
 * for, so that the chunks the response has queued reach the socket first (SQLite writes block the
 * event loop; with max_tokens 1 a usage event is asked for right behind the first token). On SQLite
 * the writes asked for meanwhile go together, in order, in one transaction: every transaction is a
 * commit on the edge's one thread, 0.15-0.33 ms for a lone usage event here against 0.06 ms an event
 * ten at a time. Each write keeps its all-or-nothing: when a batch fails, its writes run again one by
 * one, so a bad one fails alone (unless the database was locked: then they all fail at once). On D1
 * each write stays its own batch, made from its own request (a Worker's I/O belongs to the request
 * that started it).
 */
export function deferredWrites(registry: RegistryDb): RegistryDb {
  return deferredOf(registry).writes;
}

/**
 * Resolves once the event writes this process has asked for so far are done (written or failed):
 * feedback on a completion a client has just received must find its usage event. On SQLite only:
 * a Worker's request must not wait on another request's I/O, and there each write is its own.
 */
export function eventsWritten(registry: RegistryDb): Promise<void> {
  return deferred.get(registry)?.settled() ?? Promise.resolve();
}

function deferredOf(registry: RegistryDb): Deferred {
  let entry = deferred.get(registry);
  if (!entry) deferred.set(registry, (entry = registry.driver === 'sqlite' ? batcher(registry) : later(registry)));
  return entry;
}

const afterIo = () => new Promise((done) => setTimeout(done, 0));

function later(registry: RegistryDb): Deferred {
  const atomic = (statements: Statement[]) => afterIo().then(() => registry.atomic(statements));
  return { writes: { ...registry, atomic }, settled: () => Promise.resolve() };
}

interface Write {
  statements: Statement[];
  resolve(): void;
  reject(e: unknown): void;
}

function batcher(registry: RegistryDb): Deferred {
  let pending: Write[] = [];
  /** The latest flush (flushes run in order, each to its end): settled once every write asked for is. */
  let flushed: Promise<void> = Promise.resolve();
  const flush = async () => {
    const writes = pending;
    pending = [];
    try {
      await registry.atomic(writes.flatMap((w) => w.statements));
      for (const w of writes) w.resolve();
    } catch (e) {
      // The database is locked (another writer held it past busy_timeout): alone, each would wait as long.
      if (isBusy(e)) for (const w of writes) w.reject(e);
      else for (const w of writes) await registry.atomic(w.statements).then(w.resolve, w.reject);
    }
  };
  const atomic = (statements: Statement[]) =>
    new Promise<void>((resolve, reject) => {
      if (pending.push({ statements, resolve, reject }) === 1) flushed = afterIo().then(flush);
    });
  return { writes: { ...registry, atomic }, settled: () => flushed };
}

/** SQLITE_BUSY or SQLITE_LOCKED, on the error or a cause of it (drizzle wraps the driver's). */
function isBusy(e: unknown): boolean {
  for (let err = e, depth = 0; err && depth < 5; depth++, err = (err as { cause?: unknown }).cause) {
    if (/^SQLITE_(BUSY|LOCKED)/.test(String((err as { code?: unknown }).code ?? ''))) return true;
  }
  return false;
}
