/**
 * The shared test helpers against the real services: `createTestPgSchema` isolates test files in PostgreSQL
 * (tables in one schema are invisible from another, and `drop` removes it), `testS3Config` gives a fresh,
 * existing bucket on the suite's S3 server, and `ensureServices` (the global setup's check) starts a local
 * PostgreSQL/Redis that does not answer or stops the run with one line saying what and how.
 */
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { s3ClientConfig } from '../../src/storage/s3-store.js';
import { createTestPgSchema, testPostgresUrl } from '../helpers/env.js';
import { testS3Config, testS3Env } from '../helpers/s3.js';
import {
  ensureServices,
  postgresService,
  redisService,
  suitesUsing,
  type LocalService,
} from '../helpers/services.js';
import { loadConfig } from '../../src/config.js';

async function query<T>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

describe('test helpers', () => {
  it('createTestPgSchema gives each caller its own schema, dropped afterwards', async () => {
    const a = await createTestPgSchema('helpers a');
    const b = await createTestPgSchema('helpers b');
    try {
      expect(a.schema).toMatch(/^t_helpers_a_[0-9a-f]{8}$/);
      await query(a.url, 'CREATE TABLE things (id int)');
      await query(a.url, 'INSERT INTO things VALUES (1)');
      expect(await query(a.url, 'SELECT current_schema() AS s')).toEqual([{ s: a.schema }]);
      expect(await query(a.url, 'SELECT id FROM things')).toEqual([{ id: 1 }]);
      await expect(query(b.url, 'SELECT id FROM things')).rejects.toThrow(/does not exist/);
      expect(loadConfig({ DELTAGATE_DATABASE_URL: a.url }).database).toEqual({
        kind: 'postgres',
        url: a.url,
      });
    } finally {
      await a.drop();
      await b.drop();
    }
    const left = await query<{ n: string }>(
      testPostgresUrl(),
      `SELECT count(*) AS n FROM information_schema.schemata WHERE schema_name IN ('${a.schema}', '${b.schema}')`,
    );
    expect(left).toEqual([{ n: '0' }]);
  });

  it('testS3Config creates a fresh bucket that loadConfig accepts back', async () => {
    const one = await testS3Config('Helpers_Test!');
    const two = await testS3Config('Helpers_Test!');
    expect(one.bucket).toMatch(/^dg-helpers-test-[0-9a-f]{8}$/);
    expect(one.bucket).not.toBe(two.bucket);
    const client = new S3Client(s3ClientConfig(one, 'WHEN_REQUIRED'));
    await client.send(new HeadBucketCommand({ Bucket: one.bucket }));
    client.destroy();
    expect(loadConfig(testS3Env(one)).storage).toEqual(one);
  });
});

describe('ensureServices (test/global-setup.ts)', () => {
  const fake = (name: string, answersAfterStart: boolean | null): LocalService & { starts: number } => {
    let up = false;
    const s = {
      name,
      url: `x://${name.toLowerCase()}`,
      variable: `DELTAGATE_TEST_${name.toUpperCase()}_URL`,
      usedBy: /never/,
      starts: 0,
      probe: async () => (up ? null : 'ECONNREFUSED'),
      start: () => {
        if (answersAfterStart === null) return false; // not installed here
        s.starts++;
        up = answersAfterStart;
        return true;
      },
    };
    return s;
  };

  it('passes when the machine runs them (this one does)', async () => {
    expect(await ensureServices([postgresService(), redisService()])).toBeNull();
  });

  it('starts a service that does not answer, then passes', async () => {
    const db = fake('Postgres', true);
    expect(await ensureServices([db], { waitMs: 1000 })).toBeNull();
    expect(db.starts).toBe(1);
  });

  it('otherwise stops with one line: what is down, which suites need it, which variable points elsewhere', async () => {
    const line = await ensureServices([fake('Postgres', false), fake('Redis', null)], {
      waitMs: 300,
      suites: (s) => (s.name === 'Redis' ? ['test/queue'] : ['test/db', 'test/e2e']),
    });
    expect(line).toBe(
      'Postgres at x://postgres does not answer (ECONNREFUSED, also after trying to start it; needed by test/db, ' +
        'test/e2e); Redis at x://redis does not answer (ECONNREFUSED; needed by test/queue). Start them (as ' +
        '.ci/run does), point DELTAGATE_TEST_POSTGRES_URL / DELTAGATE_TEST_REDIS_URL at running servers, or set ' +
        'DELTAGATE_TEST_SERVICES=skip to run only suites that need neither.',
    );
    expect(line).not.toContain('\n');
  });

  it('names a real server that is not there, without starting anything remote', async () => {
    const line = await ensureServices([postgresService('postgres://postgres@192.0.2.1:1/test')], {
      suites: () => ['test/db'],
    });
    expect(line).toMatch(/^PostgreSQL at postgres:\/\/postgres@192\.0\.2\.1:1\/test does not answer \(/);
    expect(line).toContain('DELTAGATE_TEST_DATABASE_URL');
  });

  it('finds the suites that use each service', () => {
    expect(suitesUsing(redisService().usedBy)).toEqual(expect.arrayContaining(['test/queue']));
    expect(suitesUsing(postgresService().usedBy)).toEqual(expect.arrayContaining(['test/db', 'test/e2e']));
  });
});
