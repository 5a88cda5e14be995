/**
 * Opens the metadata database — one Kysely code path over SQLite (better-sqlite3) or PostgreSQL (pg) — and
 * applies the migrations of migrations.ts before returning. Repositories (./repositories/) take the handle;
 * nothing above src/db writes SQL. Unique-violation detection for both drivers lives here too.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type LogEvent } from 'kysely';
import pg from 'pg';
import { isPostgres, migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

export type DatabaseConfig =
  | { kind: 'sqlite'; file: string }
  | {
      kind: 'postgres';
      url: string;
      /** search_path for every connection (tests use one schema per file). */ schema?: string;
    };

export type Db = Kysely<Database>;

export interface OpenDatabaseOptions {
  /** Skip migrations (a process that must not change the schema). Default: migrate. */
  migrate?: boolean;
  /** PostgreSQL pool size. */
  maxConnections?: number;
  /** Kysely's query log hook (debugging, and tests that count queries). */
  log?: (event: LogEvent) => void;
}

export async function openDatabase(config: DatabaseConfig, options: OpenDatabaseOptions = {}): Promise<Db> {
  const db = new Kysely<Database>({
    dialect: createDialect(config, options),
    ...(options.log ? { log: options.log } : {}),
  });
  if (options.migrate !== false) {
    try {
      await migrate(db);
    } catch (err) {
      await db.destroy();
      throw err;
    }
  }
  return db;
}

function createDialect(
  config: DatabaseConfig,
  options: OpenDatabaseOptions,
): SqliteDialect | PostgresDialect {
  if (config.kind === 'sqlite') {
    if (config.file !== ':memory:') mkdirSync(dirname(config.file), { recursive: true });
    return new SqliteDialect({
      database: async () => {
        const sqlite = new BetterSqlite3(config.file);
        // WAL so an API and a worker process can share the file; busy_timeout instead of SQLITE_BUSY failures.
        if (config.file !== ':memory:') sqlite.pragma('journal_mode = WAL');
        sqlite.pragma('busy_timeout = 5000');
        sqlite.pragma('foreign_keys = ON');
        return sqlite;
      },
    });
  }
  const pool = new pg.Pool({
    connectionString: config.url,
    max: options.maxConnections ?? 10,
    ...(config.schema ? { options: `-c search_path=${quoteIdent(config.schema)}` } : {}),
  });
  return new PostgresDialect({ pool });
}

function quoteIdent(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name))
    throw new Error(`invalid schema name ${JSON.stringify(name)}`);
  return name;
}

export async function migrate(db: Db): Promise<void> {
  // Kysely looks for its migration tables across ALL schemas unless told which one; pin it to the current
  // schema so databases shared by several deployments (or test schemas) do not see each other's.
  const migrationTableSchema = isPostgres(db as Kysely<unknown>)
    ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s
    : undefined;
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`, {
      cause: error,
    });
  }
}

/** True for a UNIQUE / PRIMARY KEY violation from either driver. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  return (
    e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  );
}

/** True for a FOREIGN KEY violation from either driver (a referenced row vanished in a race). */
export function isForeignKeyViolation(err: unknown): boolean {
  const e = err as { code?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  return e.code === '23503' || e.code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

/** `pg` returns bigint columns as strings; SQLite returns numbers. */
export function toNumber(value: number | string | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'number' ? value : Number(value);
}

export function nowIso(): string {
  return new Date().toISOString();
}
