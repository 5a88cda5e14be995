// The operational surface through the real server: GET /metrics (admin key or DELTAGATE_METRICS_TOKEN; a
// customer key is 403) scraped before and after a generation through /v1, generations through GraphQL with
// two adapters behind a one-adapter label limit, and a training job — parsed as Prometheus text and the
// counters checked to have moved; GET /readyz answering 503 naming Redis, then S3, while each is unreachable
// (a redis-server this file stops and restarts, a TCP proxy in front of the S3 server it closes and reopens)
// and 200 again when they are back, while /healthz keeps answering; x-request-id on every answer.
import { createServer, Socket, type Server } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisServerAvailable, TestRedisServer } from '../helpers/redis-server.js';
import { testS3Server } from '../helpers/s3.js';
import { uniquePrefix } from '../queue/helpers.js';
import { FACTS_JSONL, factsHyperparameters, waitFor } from './fixtures/facts.js';
import { createCustomer } from './fixtures/gql-client.js';
import { ADMIN_KEY, freePort, makePeftAdapter, ok, startHarness, type Harness } from './harness.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdefghij';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Prometheus text exposition format 0.0.4, strictly: every sample line is `name{labels} value`, every
 * family has its HELP and TYPE before its samples. Throws on anything else.
 */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) {
      helps.add(m[1]!);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      types.set(m[1]!, m[2]!);
      continue;
    }
    // Values as Go's ParseFloat reads them (prom-client writes NaN as `Nan`).
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|(?:nan|[+-]inf))$/i.exec(line);
    if (!m) throw new Error(`not a Prometheus line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g))
      labels[l[1]!] = l[2]!;
    const name = m[1]!;
    const family = [...types.keys()].find(
      (f) => name === f || name.startsWith(`${f}_`), // _bucket, _sum, _count, _total
    );
    if (family === undefined || !helps.has(family)) throw new Error(`sample before HELP/TYPE: ${line}`);
    samples.push({ name, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** The value of the one sample with this name and (at least) these labels; 0 when absent. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(h: Harness, key = ADMIN_KEY) {
  const res = await fetch(`${h.server.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

describe('GET /metrics', () => {
  let h: Harness;
  let A: { id: string; key: string };

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', {
      DELTAGATE_METRICS_TOKEN: METRICS_TOKEN,
      DELTAGATE_METRICS_ADAPTER_LABELS: '1',
    });
    A = await createCustomer(h, 'Acme');
  });
  afterAll(async () => h?.close());

  it('needs the admin key or the metrics token', async () => {
    const status = async (authorization?: string) => {
      const res = await fetch(`${h.server.url}/metrics`, {
        headers: authorization ? { authorization } : {},
      });
      await res.text();
      return res.status;
    };
    expect(await status()).toBe(401);
    expect(await status('Bearer not-the-token-0123456789abcdef')).toBe(401);
    expect(await status(`Bearer ${A.key}`)).toBe(403);
    expect(await status(`Bearer ${ADMIN_KEY}`)).toBe(200);
    expect(await status(`Bearer ${METRICS_TOKEN}`)).toBe(200);
  });

  it('counts requests, tokens, latencies, the batch, the adapter cache and training jobs', async () => {
    const before = (await scrape(h, METRICS_TOKEN)).samples;

    // A generation through /v1 on the base model.
    const client = new OpenAI({ baseURL: `${h.server.url}/v1`, apiKey: A.key, maxRetries: 0 });
    const c = await client.completions.create({ model: 'deltagate-tiny', prompt: 'Hello', max_tokens: 6 });

    // A training job, run to the end by the in-process worker.
    const ds = await ok(
      h,
      A.key,
      `mutation($input: UploadDatasetInput!) { uploadDataset(input: $input) { id } }`,
      { input: { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' } },
    );
    const facts = (
      await ok(
        h,
        A.key,
        `mutation { createAdapter(input: { name: "facts", baseModelId: "deltagate-tiny" }) { id } }`,
      )
    ).createAdapter.id as string;
    const job = (
      await ok(h, A.key, `mutation($input: StartTrainingInput!) { startTraining(input: $input) { id } }`, {
        input: { adapterId: facts, datasetId: ds.uploadDataset.id, hyperparameters: factsHyperparameters(2) },
      })
    ).startTraining.id as string;
    await waitFor(
      'the training job to succeed',
      async () =>
        (await ok(h, A.key, `query($id: ID!) { trainingJob(id: $id) { status } }`, { id: job })).trainingJob
          .status === 'SUCCEEDED',
      60_000,
      200,
    );

    // Two adapters generate through GraphQL; only the first gets its own label (DELTAGATE_METRICS_ADAPTER_LABELS=1).
    const other = (
      await ok(
        h,
        A.key,
        `mutation { createAdapter(input: { name: "other", baseModelId: "deltagate-tiny" }) { id } }`,
      )
    ).createAdapter.id as string;
    const p = makePeftAdapter({ seed: 3 });
    await ok(
      h,
      A.key,
      `mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { id } }`,
      {
        input: { adapterId: other, adapterConfig: p.adapterConfig, weightsBase64: p.weightsBase64 },
      },
    );
    const GEN = `mutation($input: GenerateInput!) { generate(input: $input) { usage { completionTokens } } }`;
    const used: Record<string, number> = {};
    for (const adapter of ['facts', 'other'])
      used[adapter] = (
        await ok(h, A.key, GEN, { input: { adapter, prompt: 'Zorbia capital?', maxTokens: 3 } })
      ).generate.usage.completionTokens;

    const { samples: after, types } = await scrape(h);
    const moved = (name: string, labels: Record<string, string> = {}) =>
      valueOf(after, name, labels) - valueOf(before, name, labels);
    const base = { base_model: 'deltagate-tiny', adapter: 'none' };

    expect(types.get('deltagate_http_requests_total')).toBe('counter');
    expect(types.get('deltagate_generation_time_to_first_token_seconds')).toBe('histogram');
    expect(
      moved('deltagate_http_requests_total', { route: '/v1/completions', method: 'POST', status: '200' }),
    ).toBe(1);
    expect(
      moved('deltagate_http_requests_total', { route: '/graphql', method: 'POST', status: '200' }),
    ).toBeGreaterThan(5);
    expect(moved('deltagate_generation_requests_total', { ...base, outcome: 'ok' })).toBe(1);
    expect(moved('deltagate_generation_prompt_tokens_total', base)).toBe(c.usage!.prompt_tokens);
    expect(moved('deltagate_generation_completion_tokens_total', base)).toBe(c.usage!.completion_tokens);
    expect(moved('deltagate_generation_time_to_first_token_seconds_count', base)).toBe(1);
    expect(moved('deltagate_generation_inter_token_latency_seconds_count', base)).toBe(1);
    expect(
      valueOf(after, 'deltagate_generation_time_to_first_token_seconds_bucket', { ...base, le: '+Inf' }),
    ).toBe(valueOf(after, 'deltagate_generation_time_to_first_token_seconds_count', base));
    // Per adapter behind the label limit: the first adapter seen by id, the second as "other".
    expect(moved('deltagate_generation_completion_tokens_total', { adapter: facts })).toBe(used.facts);
    expect(moved('deltagate_generation_completion_tokens_total', { adapter: 'other' })).toBe(used.other);
    expect(moved('deltagate_generation_requests_total', { adapter: facts, outcome: 'ok' })).toBe(1);
    expect(moved('deltagate_generation_requests_total', { adapter: 'other', outcome: 'ok' })).toBe(1);
    expect(after.some((s) => s.labels.adapter === other)).toBe(false);
    // Collected on scrape: the batch, the adapter cache, SQL.
    expect(valueOf(after, 'deltagate_gateway_running', { base_model: 'deltagate-tiny' })).toBe(0);
    expect(valueOf(after, 'deltagate_gateway_waiting', { base_model: 'deltagate-tiny' })).toBe(0);
    expect(moved('deltagate_gateway_steps_total', { base_model: 'deltagate-tiny' })).toBeGreaterThanOrEqual(
      c.usage!.completion_tokens,
    );
    expect(moved('deltagate_adapter_cache_events_total', { event: 'miss' })).toBeGreaterThanOrEqual(2);
    expect(valueOf(after, 'deltagate_adapter_cache_bytes')).toBeGreaterThan(0);
    expect(valueOf(after, 'deltagate_adapter_cache_entries')).toBe(2);
    expect(valueOf(after, 'deltagate_training_jobs', { status: 'SUCCEEDED' })).toBe(1);
    expect(valueOf(after, 'deltagate_training_jobs', { status: 'RUNNING' })).toBe(0);
    expect(valueOf(after, 'deltagate_process_resident_memory_bytes')).toBeGreaterThan(0);
    // Without Redis there is no BullMQ queue to count.
    expect(after.some((s) => s.name === 'deltagate_training_queue_jobs')).toBe(false);
  }, 120_000);
});

/** A TCP proxy in front of the S3 server, closed and reopened on the same port to take S3 away. */
class Proxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    if (this.server !== null) return;
    const server = createServer((client) => {
      const upstream = new Socket();
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      upstream.connect(this.target.port, this.target.host);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe.runIf(redisServerAvailable())('GET /readyz', () => {
  let h: Harness;
  let redis: TestRedisServer;
  let s3: Proxy;

  const ready = async () => {
    const res = await fetch(`${h.server.url}/readyz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const live = async () => (await fetch(`${h.server.url}/healthz`)).status;

  beforeAll(async () => {
    redis = await TestRedisServer.create();
    await redis.start();
    const endpoint = new URL(testS3Server().endpoint);
    s3 = new Proxy(await freePort(), { host: endpoint.hostname, port: Number(endpoint.port) });
    await s3.start();
    h = await startHarness(
      'postgres+s3',
      { DELTAGATE_REDIS_URL: redis.url, DELTAGATE_S3_ENDPOINT: `http://127.0.0.1:${s3.port}` },
      { queuePrefix: uniquePrefix('readyz'), runWorker: false },
    );
  });
  afterAll(async () => {
    await redis?.start();
    await s3?.start().catch(() => undefined);
    await h?.close();
    await redis?.stop();
    await s3?.stop();
  });

  it('answers 200 with every dependency up, 503 naming Redis or S3 while it is down, 200 when it is back', async () => {
    expect(await ready()).toEqual({
      status: 200,
      body: { ok: true, checks: { sql: 'ok', blobs: 'ok', redis: 'ok' } },
    });
    // With Redis configured, /metrics counts the BullMQ training queue.
    expect(valueOf((await scrape(h)).samples, 'deltagate_training_queue_jobs', { state: 'waiting' })).toBe(0);
    expect((await scrape(h)).samples.some((s) => s.name === 'deltagate_training_queue_jobs')).toBe(true);

    await redis.stop();
    const noRedis = await ready();
    expect(noRedis.status).toBe(503);
    expect(noRedis.body).toMatchObject({ ok: false, failing: ['redis'], checks: { sql: 'ok', blobs: 'ok' } });
    expect(await live()).toBe(200); // liveness does not depend on Redis
    await redis.start();
    await waitFor('readyz 200 after Redis is back', async () => (await ready()).status === 200, 15_000, 200);

    await s3.stop();
    const noS3 = await ready();
    expect(noS3.status).toBe(503);
    expect(noS3.body).toMatchObject({ ok: false, failing: ['blobs'], checks: { sql: 'ok', redis: 'ok' } });
    expect(await live()).toBe(200);
    await s3.start();
    await waitFor('readyz 200 after S3 is back', async () => (await ready()).status === 200, 15_000, 200);

    // Every answer carries a request id.
    const res = await fetch(`${h.server.url}/readyz`, { headers: { 'x-request-id': 'probe-1' } });
    expect(res.headers.get('x-request-id')).toBe('probe-1');
  }, 90_000);
});
