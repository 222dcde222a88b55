/**
 * The registry's tables, one file per feature under schema/ (the same schema on D1 in production and
 * on SQLite via better-sqlite3 locally): `drizzle-kit generate` reads that folder and writes
 * migrations/; never edit those by hand. Import the tables from here.
 */
export * from './schema/common.ts';
export * from './schema/tenants.ts';
export * from './schema/models.ts';
export * from './schema/adapters.ts';
export * from './schema/experiments.ts';
export * from './schema/events.ts';
export * from './schema/uploads.ts';
