import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes migrations/ from the tables in registry/schema/ (one file per feature).
// The same SQL is applied to D1 by `wrangler d1 migrations apply` (wrangler.toml points there) and to
// SQLite by drizzle's migrator.
export default defineConfig({
  dialect: 'sqlite',
  schema: './registry/schema',
  out: './migrations',
});
