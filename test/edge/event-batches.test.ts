import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sqliteRegistry, type SqliteRegistry } from '../../registry/db/sqlite.ts';
import { appendEvents } from '../../registry/queries/events.ts';
import { events } from '../../registry/schema.ts';
import { deferredWrites, eventsWritten } from '../../src/experiments/write-batch.ts';

let dir: string | undefined;
let registry: SqliteRegistry | undefined;
afterEach(() => {
  registry?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function freshRegistry() {
  dir = mkdtempSync(join(tmpdir(), 'versa-event-batches-'));
  return (registry = sqliteRegistry(join(dir, 'registry.db')));
}

const usage = (i: number) => ({ type: 'usage' as const, base: 'b', completionId: `c${i}`, data: { i } });

/**
 * The edge's event writes (src/experiments/recorder.ts) go through deferredWrites: on SQLite the
 * writes asked for before the next macrotask share one transaction, each still all-or-nothing.
 */
describe('deferred, batched event writes', () => {
  it('writes the events of many completions in one transaction, in order', async () => {
    const r = freshRegistry();
    const atomic = vi.spyOn(r, 'atomic');
    const writes = deferredWrites(r);
    expect(deferredWrites(r)).toBe(writes); // one batcher per registry
    const done = Array.from({ length: 20 }, (_, i) => appendEvents(writes, [usage(i)]));
    expect(atomic).not.toHaveBeenCalled(); // not before the response's queued chunks
    await Promise.all(done);
    expect(atomic).toHaveBeenCalledTimes(1);
    const rows = await r.db.select().from(events);
    expect(rows.map((e) => e.completionId)).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
  });

  it('a write that fails, fails alone: the others of its batch are written', async () => {
    const r = freshRegistry();
    const atomic = vi.spyOn(r, 'atomic');
    const writes = deferredWrites(r);
    const bad = writes.atomic([r.db.insert(events).values({ type: null as never, createdAt: new Date() })]); // NOT NULL
    const good = [0, 1, 2].map((i) => appendEvents(writes, [usage(i)]));
    await expect(bad).rejects.toThrow(/NOT NULL/);
    await Promise.all(good);
    expect(atomic).toHaveBeenCalledTimes(1 + 4); // the batch, then each write alone
    expect((await r.db.select().from(events)).map((e) => e.completionId)).toEqual(['c0', 'c1', 'c2']);
  });

  it('a batch refused by a lock held past busy_timeout fails at once, without a wait per write', async () => {
    const r = freshRegistry();
    r.sqlite.pragma('busy_timeout = 50');
    const other = new Database(join(dir!, 'registry.db'));
    other.exec('BEGIN IMMEDIATE'); // another writer holds the lock
    try {
      const atomic = vi.spyOn(r, 'atomic');
      const writes = deferredWrites(r);
      const results = await Promise.allSettled([0, 1, 2].map((i) => appendEvents(writes, [usage(i)])));
      expect(results.map((x) => x.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(atomic).toHaveBeenCalledTimes(1);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });

  it('eventsWritten waits for the writes asked so far, written or failed (feedback finds its completion)', async () => {
    const r = freshRegistry();
    const writes = deferredWrites(r);
    const asked = appendEvents(writes, [usage(0)]);
    const failing = writes.atomic([r.db.insert(events).values({ type: null as never, createdAt: new Date() })]);
    failing.catch(() => {}); // counted by the recorder's event log in the edge
    expect(await r.db.select().from(events)).toEqual([]); // not yet: a macrotask later
    await eventsWritten(r);
    expect((await r.db.select().from(events)).map((e) => e.completionId)).toEqual(['c0']);
    await asked;
    await eventsWritten(r); // nothing in flight: at once
  });

  it('on D1 runs each write alone, a macrotask after it is asked for', async () => {
    const r = freshRegistry();
    const d1 = { ...r, driver: 'd1' as const };
    const atomic = vi.spyOn(d1, 'atomic');
    const writes = deferredWrites(d1);
    const done = [0, 1, 2].map((i) => appendEvents(writes, [usage(i)]));
    expect(atomic).not.toHaveBeenCalled(); // not before the response's queued chunks
    await Promise.all(done);
    expect(atomic).toHaveBeenCalledTimes(3);
  });
});
