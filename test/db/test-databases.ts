/**
 * Test databases for the repository, service and API tests: a fresh SQLite file or a fresh PostgreSQL schema
 * (on the server at DELTAGATE_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test), dropped
 * again by `close()`. Migrations run through the same `openDatabase` the server uses.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  openDatabase,
  type DatabaseConfig,
  type Db,
  type OpenDatabaseOptions,
} from '../../src/db/database.js';

export const DB_KINDS = ['sqlite', 'postgres'] as const;
export type DbKind = (typeof DB_KINDS)[number];

export function testPostgresUrl(): string {
  return process.env.DELTAGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export interface TestDatabase {
  config: DatabaseConfig;
  db: Db;
  close(): Promise<void>;
}

/** A database config with nothing in it yet (the caller or the server migrates it). */
export async function createTestDatabaseConfig(
  kind: DbKind,
): Promise<{ config: DatabaseConfig; drop(): Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'dg-db-'));
    return {
      config: { kind: 'sqlite', file: join(dir, 'test.sqlite') },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: testPostgresUrl() });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  return {
    config: { kind: 'postgres', url: testPostgresUrl(), schema },
    drop: async () => {
      const c = new pg.Client({ connectionString: testPostgresUrl() });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

export async function openTestDatabase(
  kind: DbKind,
  options: OpenDatabaseOptions = {},
): Promise<TestDatabase> {
  const { config, drop } = await createTestDatabaseConfig(kind);
  const db = await openDatabase(config, { maxConnections: 4, ...options });
  return {
    config,
    db,
    close: async () => {
      await db.destroy();
      await drop();
    },
  };
}
