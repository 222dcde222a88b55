import { asc } from 'drizzle-orm';
import { describe, expect, it, vi } from 'vitest';
import { sqliteRegistry } from '../../registry/db/sqlite.ts';
import { eventStatements } from '../../registry/queries/events.ts';
import { events } from '../../registry/schema.ts';

describe('SQLite writes (atomic)', () => {
  it('prepares a write statement once per SQL text, with each run its own values', async () => {
    const registry = sqliteRegistry(':memory:');
    try {
      const prepare = vi.spyOn(registry.sqlite, 'prepare');
      for (let i = 0; i < 5; i++) {
        const usage = { type: 'usage' as const, tenantId: 'default', completionId: `c${i}`, data: { i } };
        await registry.atomic(eventStatements(registry, [usage], new Date(1_000_000 + i * 1000)));
      }
      const inserts = prepare.mock.calls.filter(([text]) => /^insert into "events"/i.test(String(text)));
      expect(inserts).toHaveLength(1);
      const rows = await registry.db.select().from(events).orderBy(asc(events.completionId));
      expect(rows.map((r) => [r.completionId, r.data, r.createdAt.getTime()])).toEqual(
        [0, 1, 2, 3, 4].map((i) => [`c${i}`, { i }, 1_000_000 + i * 1000]),
      );
    } finally {
      registry.close();
    }
  });
});
