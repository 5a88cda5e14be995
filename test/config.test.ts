/**
 * `loadConfig`: defaults on an empty environment, every variable parsed, and a one-line error naming the
 * variable for each kind of bad value. Pure: no files or servers.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_VARIABLES,
  ConfigError,
  configTableMarkdown,
  loadConfig,
  unknownVariables,
  type Config,
} from '../src/config.js';

const MiB = 1024 * 1024;

describe('loadConfig', () => {
  it('gives the embedded defaults on an empty environment', () => {
    const dataDir = resolve('./.deltagate');
    expect(loadConfig({})).toEqual<Config>({
      port: 4000,
      host: '0.0.0.0',
      dataDir,
      database: { kind: 'sqlite', file: `${dataDir}/deltagate.sqlite` },
      storage: { kind: 'fs', dir: `${dataDir}/blobs` },
      redisUrl: null,
      adminKey: null,
      baseModels: [],
      servingQuantization: 'nf4',
      publicUrl: 'http://localhost:4000',
      logLevel: 'info',
      logFormat: 'json',
      production: false,
      limits: {
        maxDatasetBytes: 100 * MiB,
        maxInlineDatasetBytes: 4 * MiB,
        maxAdapterBytes: 256 * MiB,
        maxInlineAdapterBytes: 4 * MiB,
        rateLimitPerMinute: 600,
        generationTokensPerMinute: 20_000,
      },
      workerConcurrency: 1,
      executionProvider: 'cpu',
      gateway: {
        kvCacheBytes: 1024 * MiB,
        maxBatch: 64,
        maxSequence: 4096,
        prefillTokens: 256,
        adapterSlots: 64,
        adapterCacheBytes: 256 * MiB,
        maxRunningPerCustomer: 32,
        maxQueuedPerCustomer: 64,
        requestTimeoutMs: 120_000,
      },
      metrics: { token: null, adapterLabels: 20 },
      consoleDir: undefined,
    });
  });

  it('reads every variable', () => {
    const c = loadConfig({
      DELTAGATE_PORT: '8080',
      DELTAGATE_HOST: '127.0.0.1',
      DELTAGATE_DATA_DIR: '/var/lib/deltagate',
      DELTAGATE_DATABASE_URL: 'postgresql://dg:pw@db:5432/deltagate',
      DELTAGATE_S3_ENDPOINT: 'http://minio:9000/',
      DELTAGATE_S3_BUCKET: 'deltagate',
      DELTAGATE_S3_REGION: 'eu-west-1',
      DELTAGATE_S3_ACCESS_KEY_ID: 'minioadmin',
      DELTAGATE_S3_SECRET_ACCESS_KEY: 'minioadmin',
      DELTAGATE_S3_FORCE_PATH_STYLE: 'false',
      DELTAGATE_REDIS_URL: 'redis://redis:6379/0',
      DELTAGATE_ADMIN_KEY: 'k'.repeat(32),
      DELTAGATE_BASE_MODELS: '/models/a#int4, /models/b:/models/c#none',
      DELTAGATE_SERVING_QUANTIZATION: 'none',
      DELTAGATE_PUBLIC_URL: 'https://api.example.com/',
      DELTAGATE_LOG_LEVEL: 'debug',
      DELTAGATE_LOG_FORMAT: 'pretty',
      DELTAGATE_METRICS_TOKEN: 'm'.repeat(24),
      DELTAGATE_METRICS_ADAPTER_LABELS: '0',
      DELTAGATE_MAX_DATASET_BYTES: '1000',
      DELTAGATE_MAX_INLINE_DATASET_BYTES: '10',
      DELTAGATE_MAX_ADAPTER_BYTES: '2000',
      DELTAGATE_RATE_LIMIT_PER_MINUTE: '5',
      DELTAGATE_WORKER_CONCURRENCY: '2',
      DELTAGATE_EXECUTION_PROVIDER: 'cuda',
      DELTAGATE_KV_CACHE_BYTES: '3000',
      DELTAGATE_GATEWAY_MAX_BATCH: '8',
      DELTAGATE_GATEWAY_MAX_SEQUENCE: '512',
      DELTAGATE_GATEWAY_PREFILL_TOKENS: '64',
      DELTAGATE_GATEWAY_ADAPTER_SLOTS: '4',
      DELTAGATE_ADAPTER_CACHE_BYTES: '4000',
      DELTAGATE_GATEWAY_MAX_RUNNING_PER_CUSTOMER: '2',
      DELTAGATE_GATEWAY_MAX_QUEUED_PER_CUSTOMER: '3',
      DELTAGATE_GENERATION_TIMEOUT_MS: '5000',
      DELTAGATE_CONSOLE_DIR: '/srv/console',
      NODE_ENV: 'production',
    });
    expect(c).toEqual<Config>({
      port: 8080,
      host: '127.0.0.1',
      dataDir: '/var/lib/deltagate',
      database: { kind: 'postgres', url: 'postgresql://dg:pw@db:5432/deltagate' },
      storage: {
        kind: 's3',
        endpoint: 'http://minio:9000',
        bucket: 'deltagate',
        region: 'eu-west-1',
        accessKeyId: 'minioadmin',
        secretAccessKey: 'minioadmin',
        forcePathStyle: false,
      },
      redisUrl: 'redis://redis:6379/0',
      adminKey: 'k'.repeat(32),
      baseModels: [
        { dir: '/models/a', servingQuantization: 'int4' },
        { dir: '/models/b', servingQuantization: 'none' },
        { dir: '/models/c', servingQuantization: 'none' },
      ],
      servingQuantization: 'none',
      publicUrl: 'https://api.example.com',
      logLevel: 'debug',
      logFormat: 'pretty',
      production: true,
      limits: {
        maxDatasetBytes: 1000,
        maxInlineDatasetBytes: 10,
        maxAdapterBytes: 2000,
        maxInlineAdapterBytes: 2000,
        rateLimitPerMinute: 5,
        generationTokensPerMinute: 20_000,
      },
      workerConcurrency: 2,
      executionProvider: 'cuda',
      gateway: {
        kvCacheBytes: 3000,
        maxBatch: 8,
        maxSequence: 512,
        prefillTokens: 64,
        adapterSlots: 4,
        adapterCacheBytes: 4000,
        maxRunningPerCustomer: 2,
        maxQueuedPerCustomer: 3,
        requestTimeoutMs: 5000,
      },
      metrics: { token: 'm'.repeat(24), adapterLabels: 0 },
      consoleDir: resolve('/srv/console'),
    });
  });

  it('resolves relative paths and derived defaults', () => {
    const c = loadConfig({
      DELTAGATE_DATA_DIR: 'rel/data',
      DELTAGATE_PORT: '5000',
      DELTAGATE_S3_BUCKET: 'only-bucket',
      DELTAGATE_DATABASE_URL: 'sqlite://db/x.sqlite',
    });
    expect(c.dataDir).toBe(resolve('rel/data'));
    expect(c.database).toEqual({ kind: 'sqlite', file: resolve('db/x.sqlite') });
    expect(c.publicUrl).toBe('http://localhost:5000');
    expect(c.storage).toEqual({
      kind: 's3',
      endpoint: null,
      bucket: 'only-bucket',
      region: 'us-east-1',
      accessKeyId: null,
      secretAccessKey: null,
      forcePathStyle: false,
    });
    expect(
      loadConfig({ DELTAGATE_S3_ENDPOINT: 'http://m:9000', DELTAGATE_S3_BUCKET: 'b-1' }).storage,
    ).toMatchObject({
      forcePathStyle: true,
    });
    expect(loadConfig({ DELTAGATE_DATABASE_URL: 'sqlite:///abs/x.db' }).database).toEqual({
      kind: 'sqlite',
      file: '/abs/x.db',
    });
    expect(loadConfig({ DELTAGATE_DATABASE_URL: 'sqlite://:memory:' }).database).toEqual({
      kind: 'sqlite',
      file: ':memory:',
    });
    expect(loadConfig({ DELTAGATE_PORT: '  ' }).port).toBe(4000);
    // A model without a `#…` suffix serves on the global grid (nf4 unless DELTAGATE_SERVING_QUANTIZATION says).
    expect(loadConfig({ DELTAGATE_BASE_MODELS: 'models/x,/m/y#nf4,/m/z#int4' }).baseModels).toEqual([
      { dir: resolve('models/x'), servingQuantization: 'nf4' },
      { dir: '/m/y', servingQuantization: 'nf4' },
      { dir: '/m/z', servingQuantization: 'int4' },
    ]);
  });

  it.each<[Record<string, string>, string]>([
    [{ DELTAGATE_PORT: 'abc' }, 'DELTAGATE_PORT must be an integer 1-65535 (got "abc")'],
    [{ DELTAGATE_PORT: '70000' }, 'DELTAGATE_PORT must be an integer 1-65535 (got "70000")'],
    [{ DELTAGATE_PORT: '80.5' }, 'DELTAGATE_PORT must be an integer 1-65535 (got "80.5")'],
    [
      { DELTAGATE_DATABASE_URL: 'mysql://x' },
      'DELTAGATE_DATABASE_URL must start with sqlite://, postgres:// or postgresql:// (got "mysql://x")',
    ],
    [
      { DELTAGATE_DATABASE_URL: 'postgres://' },
      'DELTAGATE_DATABASE_URL must be a valid postgres:// URL (got "postgres://")',
    ],
    [
      { DELTAGATE_S3_ENDPOINT: 'http://minio:9000' },
      'DELTAGATE_S3_BUCKET must be set when DELTAGATE_S3_ENDPOINT is set (got nothing)',
    ],
    [
      { DELTAGATE_S3_ENDPOINT: 'minio:9000', DELTAGATE_S3_BUCKET: 'b' },
      'DELTAGATE_S3_ENDPOINT must be an http(s) URL (got "minio:9000")',
    ],
    [
      { DELTAGATE_S3_BUCKET: 'Bad_Bucket' },
      'DELTAGATE_S3_BUCKET must be a valid S3 bucket name (3-63 of a-z 0-9 . -) (got "Bad_Bucket")',
    ],
    [
      { DELTAGATE_S3_BUCKET: 'bkt', DELTAGATE_S3_ACCESS_KEY_ID: 'a' },
      'DELTAGATE_S3_SECRET_ACCESS_KEY must be set together with its pair (got nothing)',
    ],
    [
      { DELTAGATE_S3_BUCKET: 'bkt', DELTAGATE_S3_FORCE_PATH_STYLE: 'maybe' },
      'DELTAGATE_S3_FORCE_PATH_STYLE must be true or false (got "maybe")',
    ],
    [
      { DELTAGATE_REDIS_URL: 'http://redis' },
      'DELTAGATE_REDIS_URL must be a redis:// or rediss:// URL (got "http://redis")',
    ],
    [
      { DELTAGATE_ADMIN_KEY: 'short' },
      'DELTAGATE_ADMIN_KEY must be at least 24 characters, no spaces (got 5 characters, not shown)',
    ],
    [{ DELTAGATE_PUBLIC_URL: 'ftp://x' }, 'DELTAGATE_PUBLIC_URL must be an http(s) URL (got "ftp://x")'],
    [
      { DELTAGATE_LOG_LEVEL: 'loud' },
      'DELTAGATE_LOG_LEVEL must be one of fatal|error|warn|info|debug|trace|silent (got "loud")',
    ],
    [{ DELTAGATE_LOG_FORMAT: 'xml' }, 'DELTAGATE_LOG_FORMAT must be json or pretty (got "xml")'],
    [
      { DELTAGATE_METRICS_TOKEN: 'short token' },
      'DELTAGATE_METRICS_TOKEN must be at least 24 characters, no spaces (got 11 characters, not shown)',
    ],
    [
      { DELTAGATE_METRICS_ADAPTER_LABELS: '-1' },
      'DELTAGATE_METRICS_ADAPTER_LABELS must be an integer 0-1000 (got "-1")',
    ],
    [
      { DELTAGATE_MAX_DATASET_BYTES: '-1' },
      'DELTAGATE_MAX_DATASET_BYTES must be a positive integer number of bytes (got "-1")',
    ],
    [
      { DELTAGATE_MAX_DATASET_BYTES: '10', DELTAGATE_MAX_INLINE_DATASET_BYTES: '20' },
      'DELTAGATE_MAX_INLINE_DATASET_BYTES must be at most DELTAGATE_MAX_DATASET_BYTES (got 20 > 10)',
    ],
    [
      { DELTAGATE_RATE_LIMIT_PER_MINUTE: '0' },
      'DELTAGATE_RATE_LIMIT_PER_MINUTE must be an integer 1-1000000 (got "0")',
    ],
    [
      { DELTAGATE_WORKER_CONCURRENCY: 'many' },
      'DELTAGATE_WORKER_CONCURRENCY must be an integer 1-64 (got "many")',
    ],
    [{ DELTAGATE_EXECUTION_PROVIDER: 'tpu' }, 'DELTAGATE_EXECUTION_PROVIDER must be cpu or cuda (got "tpu")'],
    [
      { DELTAGATE_SERVING_QUANTIZATION: 'fp8' },
      'DELTAGATE_SERVING_QUANTIZATION must be none, nf4 or int4 (got "fp8")',
    ],
    [
      { DELTAGATE_BASE_MODELS: '/models/a,/models/b#int8' },
      'DELTAGATE_BASE_MODELS entries must be <dir> or <dir>#none|nf4|int4 (got "/models/b#int8")',
    ],
    [
      { DELTAGATE_BASE_MODELS: '#int4' },
      'DELTAGATE_BASE_MODELS entries must be <dir> or <dir>#none|nf4|int4 (got "#int4")',
    ],
  ])('refuses %j with one line naming the variable', (env, message) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(message);
    expect((err as ConfigError).message).not.toContain('\n');
    expect(message.startsWith((err as ConfigError).variable)).toBe(true);
  });

  it('documents every variable it reads, and flags unknown DELTAGATE_* names', () => {
    const names = CONFIG_VARIABLES.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    for (const v of CONFIG_VARIABLES) expect(v.description.length).toBeGreaterThan(10);
    // Every DELTAGATE_* name the loader's source mentions is in the table, and the other way round.
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const mentioned = new Set(source.match(/DELTAGATE_[A-Z0-9_]+/g));
    expect([...mentioned].sort()).toEqual(
      names
        .filter((n) => n.startsWith('DELTAGATE_'))
        .concat(['DELTAGATE_TEST_', 'DELTAGATE_DEBUG'])
        .sort(),
    );
    expect(
      unknownVariables({
        DELTAGATE_PROT: '1',
        DELTAGATE_PORT: '1',
        DELTAGATE_TEST_S3_ENDPOINT: 'x',
        HOME: '/',
      }),
    ).toEqual(['DELTAGATE_PROT']);
  });

  it('renders the configuration table from the same list', () => {
    const lines = configTableMarkdown().trimEnd().split('\n');
    expect(lines).toHaveLength(2 + CONFIG_VARIABLES.length);
    expect(lines[2]).toBe('| `DELTAGATE_PORT` | `4000` | HTTP port of the API (GraphQL on /graphql). |');
    expect(lines.find((l) => l.startsWith('| `DELTAGATE_REDIS_URL`'))).toMatch(
      /^\| `DELTAGATE_REDIS_URL` \| \(unset\) \|/,
    );
  });
});
