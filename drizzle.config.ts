import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes migrations/ from registry/schema.ts. The same SQL is applied to D1 by
// `wrangler d1 migrations apply` (wrangler.toml points there) and to SQLite by drizzle's migrator.
export default defineConfig({
  dialect: 'sqlite',
  schema: './registry/schema.ts',
  out: './migrations',
});
