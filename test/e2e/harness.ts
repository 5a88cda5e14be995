/**
 * E2E harness: starts the real server (src/main.ts) on a free port with a given storage and database, and
 * talks to it over HTTP (`gql`) and graphql-ws (`wsClient`) exactly like a client app. Also builds PEFT
 * adapters for the built-in model with the formats module's serializer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import { pino } from 'pino';
import WebSocket from 'ws';
import { loadConfig, type Config } from '../../src/config.js';
import { BUILTIN_CONFIG } from '../../src/engine/builtin-model.js';
import { linearShape, parseModelConfig, type LinearModule } from '../../src/engine/formats/hf-config.js';
import { loraScale, serializePeftAdapter, type LoraWeights } from '../../src/engine/formats/peft.js';
import { startServer, type RunningServer, type StartServerOptions } from '../../src/main.js';
import { createTestPgSchema } from '../helpers/env.js';
import { testS3Config, testS3Env } from '../helpers/s3.js';

export const ADMIN_KEY = 'test-admin-key-0123456789-abcdefghijklmnop';

export type Backend = 'sqlite+fs' | 'postgres+s3';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface Harness {
  server: RunningServer;
  config: Config;
  graphqlUrl: string;
  wsUrl: string;
  close(): Promise<void>;
}

/** `env` overrides the DELTAGATE_* variables; `training` the queue settings (prefix, lock) a test needs. */
export async function startHarness(
  backend: Backend,
  env: Record<string, string> = {},
  training?: StartServerOptions['training'],
): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dg-e2e-'));
  const port = await freePort();
  const cleanups: (() => Promise<void>)[] = [async () => rmSync(dataDir, { recursive: true, force: true })];
  let backendEnv: Record<string, string> = {};
  if (backend === 'postgres+s3') {
    const pg = await createTestPgSchema('e2e');
    cleanups.push(pg.drop);
    backendEnv = { DELTAGATE_DATABASE_URL: pg.url, ...testS3Env(await testS3Config('e2e')) };
  }
  const config = loadConfig({
    DELTAGATE_DATA_DIR: dataDir,
    DELTAGATE_PORT: String(port),
    DELTAGATE_HOST: '127.0.0.1',
    DELTAGATE_ADMIN_KEY: ADMIN_KEY,
    DELTAGATE_RATE_LIMIT_PER_MINUTE: '100000',
    ...backendEnv,
    ...env,
  });
  const server = await startServer(config, {
    logger: pino({ level: 'warn' }),
    ...(training === undefined ? {} : { training }),
  });
  return {
    server,
    config,
    graphqlUrl: `${server.url}/graphql`,
    wsUrl: `${server.url.replace(/^http/, 'ws')}/graphql`,
    async close() {
      await server.close();
      for (const c of cleanups.reverse()) await c();
    },
  };
}

export interface GqlResult<T = Record<string, unknown>> {
  status: number;
  data: T | null;
  errors: { message: string; extensions?: { code?: string } }[] | undefined;
}

export async function gql<T = Record<string, unknown>>(
  h: Harness,
  key: string | null,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GqlResult<T>> {
  const res = await fetch(h.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T | null; errors?: GqlResult['errors'] };
  return { status: res.status, data: body.data ?? null, errors: body.errors };
}

/** Response data are checked with whole-value assertions, so the tests read them loosely typed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;

/** The data of a call that must succeed (the errors are shown when it does not). */
export async function ok<T = Record<string, Loose>>(
  h: Harness,
  key: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const r = await gql<T>(h, key, query, variables);
  if (r.errors?.length || r.data === null)
    throw new Error(`GraphQL call failed: ${JSON.stringify(r.errors)}`);
  return r.data;
}

/** The error codes of a call (one per error, in order). */
export async function codes(
  h: Harness,
  key: string | null,
  query: string,
  variables: Record<string, unknown> = {},
) {
  const r = await gql(h, key, query, variables);
  return (r.errors ?? []).map((e) => e.extensions?.code);
}

/** The stable `code` a service call fails with, for whole-value assertions below the API. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return 'no error';
}

export function wsClient(h: Harness, authorization: string | null): Client {
  return createClient({
    url: h.wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: authorization === null ? {} : { authorization },
    onNonLazyError: () => undefined,
  });
}

const BASE = parseModelConfig(BUILTIN_CONFIG);

/** A PEFT adapter for the built-in model; `outBy` grows lora_B's rows to make it mis-shaped. */
export function makePeftAdapter(
  opts: { rank?: number; modules?: LinearModule[]; seed?: number; outBy?: number } = {},
) {
  const rank = opts.rank ?? 4;
  const modules = opts.modules ?? ['q_proj', 'v_proj'];
  let s = opts.seed ?? 1;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.02;
  const weights = new Map<string, LoraWeights>();
  for (let layer = 0; layer < BASE.numLayers; layer++) {
    for (const m of modules) {
      const { inFeatures, outFeatures } = linearShape(BASE, m);
      weights.set(`${layer}.${m}`, {
        a: Float32Array.from({ length: rank * inFeatures }, rand),
        b: Float32Array.from({ length: (outFeatures + (opts.outBy ?? 0)) * rank }, rand),
      });
    }
  }
  const { adapterConfig, weights: bytes } = serializePeftAdapter({
    rank,
    alpha: 2 * rank,
    useRslora: false,
    scale: loraScale(2 * rank, rank, false),
    dropout: 0,
    targetModules: modules,
    baseModelName: 'deltagate-tiny',
    weights,
  });
  return { adapterConfig, weights: bytes, weightsBase64: Buffer.from(bytes).toString('base64') };
}
