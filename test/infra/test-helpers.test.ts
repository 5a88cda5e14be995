/**
 * The shared test helpers against the real services: `createTestPgSchema` isolates test files in PostgreSQL
 * (tables in one schema are invisible from another, and `drop` removes it), and `testS3Config` gives a fresh,
 * existing bucket on the suite's S3 server.
 */
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { s3ClientConfig } from '../../src/storage/s3-store.js';
import { createTestPgSchema, testPostgresUrl } from '../helpers/env.js';
import { testS3Config, testS3Env } from '../helpers/s3.js';
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
