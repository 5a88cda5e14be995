// Derived versions and exports on the production wiring: the API (this process, the real server) on
// PostgreSQL + S3 + Redis queues them, a `deltagate worker` process runs them from BullMQ, and progress reaches
// the trainingJobProgress subscription over Redis. A MERGE registers its version with its parents in
// PostgreSQL; a GGUF export is stored in S3 and downloads through its presigned URL.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { bytesSource, parseGguf } from '../../src/engine/formats/gguf.js';
import { testS3Env } from '../helpers/s3.js';
import { waitFor } from './fixtures/facts.js';
import { collect, createCustomer } from './fixtures/gql-client.js';
import { startRedisApi } from './fixtures/server.js';
import { makePeftAdapter, ok, wsClient, type Harness, type Loose } from './harness.js';

const REDIS_URL = process.env.DELTAGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PROGRESS = `subscription($id: ID!) { trainingJobProgress(id: $id) { jobId status step totalSteps message } }`;

describe('derived versions and exports with a deltagate worker on Redis, PostgreSQL and S3', () => {
  const prefix = `dgtest-derive-${randomBytes(4).toString('hex')}`;
  const logs: string[] = [];
  let worker: ChildProcess | undefined;
  let h: Harness;

  beforeAll(async () => {
    h = await startRedisApi(REDIS_URL, { queuePrefix: prefix, runWorker: false });
    const { database, storage } = h.config;
    if (database.kind !== 'postgres' || storage.kind !== 's3') throw new Error('expected PostgreSQL + S3');
    worker = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'fixtures', 'worker-process.ts'),
        '--queue-prefix',
        prefix,
      ],
      {
        env: {
          ...process.env,
          DELTAGATE_DATA_DIR: h.config.dataDir,
          DELTAGATE_DATABASE_URL: database.url,
          DELTAGATE_REDIS_URL: REDIS_URL,
          DELTAGATE_LOG_LEVEL: 'warn',
          ...testS3Env(storage),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        logs.push(d.toString());
        if (logs.join('').includes('deltagate worker ready')) resolve();
      };
      worker!.stdout!.on('data', onData);
      worker!.stderr!.on('data', onData);
      worker!.once('exit', (code) => reject(new Error(`worker exited (${code}):\n${logs.join('')}`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => worker!.once('exit', r));
    }
    await h?.close();
    const redis = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  });

  it(
    'MERGE then EXPORT: progress over Redis, lineage in PostgreSQL, the file in S3',
    { timeout: 120_000 },
    async () => {
      onTestFailed(() => console.log(`worker output:\n${logs.join('')}`));
      const A = await createCustomer(h, 'Acme');
      const adapterId = (
        await ok(
          h,
          A.key,
          `mutation { createAdapter(input: { name: "a", baseModelId: "deltagate-tiny" }) { id } }`,
        )
      ).createAdapter.id;
      const versions: string[] = [];
      for (const seed of [1, 2]) {
        const f = makePeftAdapter({ rank: 4, seed });
        versions.push(
          (
            await ok(
              h,
              A.key,
              `mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { id } }`,
              { input: { adapterId, adapterConfig: f.adapterConfig, weightsBase64: f.weightsBase64 } },
            )
          ).importAdapterVersion.id,
        );
      }
      const job = (
        await ok(
          h,
          A.key,
          `mutation($input: DeriveAdapterVersionInput!) { deriveAdapterVersion(input: $input) { id status } }`,
          {
            input: {
              adapterId,
              operation: 'MERGE',
              method: 'SVD',
              rank: 2,
              sources: [
                { versionId: versions[0], weight: 0.25 },
                { versionId: versions[1], weight: 0.75 },
              ],
            },
          },
        )
      ).deriveAdapterVersion;
      const client = wsClient(h, `Bearer ${A.key}`);
      const progress = collect<Loose>(client, PROGRESS, { id: job.id });
      await progress.done;
      const events = progress.events.map((e) => e.data.trainingJobProgress);
      expect(events.at(-1)).toMatchObject({ status: 'SUCCEEDED', step: 8, totalSteps: 8 });
      expect(events.some((e) => e.status === 'RUNNING' && e.step > 0 && e.step < 8)).toBe(true);
      const version = (
        await ok(
          h,
          A.key,
          `query($id: ID!) { trainingJob(id: $id) { resultVersion { id version rank parents { versionId weight } derivation { method rank } } } }`,
          { id: job.id },
        )
      ).trainingJob.resultVersion;
      expect(version).toMatchObject({
        version: 3,
        rank: 2,
        parents: [
          { versionId: versions[0], weight: 0.25 },
          { versionId: versions[1], weight: 0.75 },
        ],
        derivation: { method: 'SVD', rank: 2 },
      });

      const exp = (
        await ok(
          h,
          A.key,
          `mutation($input: ExportAdapterVersionInput!) { exportAdapterVersion(input: $input) { id } }`,
          { input: { versionId: version.id, format: 'GGUF', quantize: 'Q8_0' } },
        )
      ).exportAdapterVersion;
      const exported = collect<Loose>(client, PROGRESS, { id: exp.id });
      await exported.done;
      await client.dispose();
      expect(exported.events.at(-1)!.data.trainingJobProgress).toMatchObject({ status: 'SUCCEEDED' });
      const artifact = await waitFor('the artifact', async () => {
        const j = await ok(
          h,
          A.key,
          `query($id: ID!) { trainingJob(id: $id) { artifact { fileName sizeBytes sha256 downloadUrl } } }`,
          { id: exp.id },
        );
        return j.trainingJob.artifact;
      });
      expect(artifact.fileName).toBe('a-v3-q8_0.gguf');
      const res = await fetch(artifact.downloadUrl);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(bytes.byteLength).toBe(artifact.sizeBytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(artifact.sha256);
      expect(parseGguf(bytesSource(bytes)).version).toBe(3);
    },
  );
});
