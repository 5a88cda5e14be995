/**
 * PostgreSQL for tests. `testPostgresUrl()` is `DELTAGATE_TEST_DATABASE_URL` or the machine's server
 * (postgres://postgres@127.0.0.1:5432/test). `createTestPgSchema()` creates a fresh schema and returns a URL
 * whose connections use it (`options=-c search_path=<schema>`), plus `drop()` to remove it; call it in
 * `beforeAll` and `drop` in `afterAll` so test files never see each other's tables.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export function testPostgresUrl(): string {
  return process.env.DELTAGATE_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
}

export interface TestPgSchema {
  /** Connection URL pinned to the schema. */
  url: string;
  schema: string;
  drop(): Promise<void>;
}

export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

export async function createTestPgSchema(label = 'test'): Promise<TestPgSchema> {
  const base = testPostgresUrl();
  const schema = `t_${label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
  } finally {
    await client.end();
  }
  return {
    url: withSearchPath(base, schema),
    schema,
    async drop() {
      const c = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}
