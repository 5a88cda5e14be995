/**
 * Configuration from `DELTAGATE_*` environment variables, validated once at start-up (zod, one schema per
 * variable) into a typed `Config`. A bad value throws `ConfigError` whose message is one line naming the
 * variable. It does not create directories, generate the admin key or connect to anything: the
 * composition roots (`src/main.ts`, `src/commands/*`) do that. `CONFIG_VARIABLES` feeds README's table and
 * `test/infra/compose.test.ts`.
 */
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import type { DatabaseConfig } from './db/database.js';
import type { Quantization } from './engine/nn/weights.js';

export type { DatabaseConfig };

/** The base weights generation runs on: fp32 checkpoint, NF4 (+ double quantization) or the int4 grid. */
export type ServingQuantization = Quantization;
export const SERVING_QUANTIZATIONS = [
  'none',
  'nf4',
  'int4',
] as const satisfies readonly ServingQuantization[];

export interface BaseModelEntry {
  /** Absolute HF model directory. */
  dir: string;
  /** Its `#…` suffix, else the global serving quantization. */
  servingQuantization: ServingQuantization;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface S3StorageConfig {
  kind: 's3';
  /** null: the AWS endpoint for `region`. */
  endpoint: string | null;
  bucket: string;
  region: string;
  /** null: the SDK's default credential chain (env, profile, instance role). */
  accessKeyId: string | null;
  secretAccessKey: string | null;
  /** MinIO and moto want path-style; defaults to true when an endpoint is set. */
  forcePathStyle: boolean;
}

export type StorageConfig = { kind: 'fs'; dir: string } | S3StorageConfig;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** json: one JSON object a line (for log shippers); pretty: one readable line each (for a terminal). */
export type LogFormat = 'json' | 'pretty';

export interface Limits {
  maxDatasetBytes: number;
  maxInlineDatasetBytes: number;
  maxAdapterBytes: number;
  /** Largest adapter weights `importAdapterVersion` takes inline (base64); at most maxAdapterBytes. */
  maxInlineAdapterBytes: number;
  rateLimitPerMinute: number;
  /** Generation tokens (maxTokens + prompt) one customer may reserve per minute. */
  generationTokensPerMinute: number;
}

export interface Config {
  port: number;
  host: string;
  /** Absolute. */
  dataDir: string;
  database: DatabaseConfig;
  storage: StorageConfig;
  /** null: the in-process queue. */
  redisUrl: string | null;
  /** null: the server generates one, keeps it in the data dir and prints it once. */
  adminKey: string | null;
  /** HF model directories to register besides the built-in one, each with its serving grid. */
  baseModels: BaseModelEntry[];
  /** Serving grid of the built-in model and of every base model without a `#…` suffix. */
  servingQuantization: ServingQuantization;
  /** Base URL (no trailing slash) the directory store puts in presigned links. */
  publicUrl: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  production: boolean;
  limits: Limits;
  workerConcurrency: number;
  executionProvider: 'cpu' | 'cuda';
  gateway: GatewayConfig;
  metrics: MetricsConfig;
  /** The web console's built files (index.html + assets/); null: not served ('off'); undefined: the package's
   * own console/dist, found by the HTTP layer. */
  consoleDir: string | null | undefined;
}

/** GET /metrics (src/http/metrics.ts). */
export interface MetricsConfig {
  /** A bearer token that may scrape /metrics besides the admin key; null: the admin key only. */
  token: string | null;
  /** Adapters that get their own `adapter` label value in generation metrics; the rest are "other". */
  adapterLabels: number;
}

/** The serving runtime's sizes and limits (src/gateway/, docs/GATEWAY.md). */
export interface GatewayConfig {
  kvCacheBytes: number;
  maxBatch: number;
  maxSequence: number;
  prefillTokens: number;
  adapterSlots: number;
  adapterCacheBytes: number;
  maxRunningPerCustomer: number;
  maxQueuedPerCustomer: number;
  requestTimeoutMs: number;
}

export interface ConfigVariable {
  name: string;
  /** As shown in README's table; '' when unset by default. */
  default: string;
  description: string;
}

const MiB = 1024 * 1024;

/** Every plain default, once: the loader falls back to these and README's table shows them. */
const DEFAULTS = {
  port: 4000,
  host: '0.0.0.0',
  dataDir: './.deltagate',
  s3Region: 'us-east-1',
  logLevel: 'info',
  logFormat: 'json',
  metricsAdapterLabels: 20,
  maxDatasetBytes: 100 * MiB,
  maxInlineDatasetBytes: 4 * MiB,
  maxAdapterBytes: 256 * MiB,
  maxInlineAdapterBytes: 4 * MiB,
  rateLimitPerMinute: 600,
  generationTokensPerMinute: 20_000,
  workerConcurrency: 1,
  executionProvider: 'cpu',
  servingQuantization: 'nf4',
  kvCacheBytes: 1024 * MiB,
  gatewayMaxBatch: 64,
  gatewayMaxSequence: 4096,
  gatewayPrefillTokens: 256,
  gatewayAdapterSlots: 64,
  adapterCacheBytes: 256 * MiB,
  gatewayMaxRunningPerCustomer: 32,
  gatewayMaxQueuedPerCustomer: 64,
  generationTimeoutMs: 120_000,
} as const;

export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  {
    name: 'DELTAGATE_PORT',
    default: String(DEFAULTS.port),
    description: 'HTTP port of the API (GraphQL on /graphql).',
  },
  { name: 'DELTAGATE_HOST', default: DEFAULTS.host, description: 'Interface the API listens on.' },
  {
    name: 'DELTAGATE_DATA_DIR',
    default: DEFAULTS.dataDir,
    description: 'Directory for the embedded defaults (SQLite file, blob directory, generated admin key).',
  },
  {
    name: 'DELTAGATE_DATABASE_URL',
    default: 'sqlite://<data dir>/deltagate.sqlite',
    description: 'Metadata database: `sqlite://<file>` or `postgres://user@host:port/db`.',
  },
  {
    name: 'DELTAGATE_S3_ENDPOINT',
    default: '',
    description:
      'S3-compatible endpoint (MinIO, moto). Unset with no bucket: a blob directory in the data dir.',
  },
  {
    name: 'DELTAGATE_S3_BUCKET',
    default: '',
    description: 'Bucket for datasets, adapters and checkpoints; setting it selects S3 storage.',
  },
  {
    name: 'DELTAGATE_S3_REGION',
    default: DEFAULTS.s3Region,
    description: "S3 region (MinIO ignores it; AWS needs the bucket's).",
  },
  {
    name: 'DELTAGATE_S3_ACCESS_KEY_ID',
    default: '',
    description: 'S3 access key; unset: the AWS default credential chain.',
  },
  {
    name: 'DELTAGATE_S3_SECRET_ACCESS_KEY',
    default: '',
    description: 'S3 secret key (with the access key).',
  },
  {
    name: 'DELTAGATE_S3_FORCE_PATH_STYLE',
    default: 'true with an endpoint, else false',
    description: 'Path-style bucket addressing (`true`/`false`); MinIO needs true.',
  },
  {
    name: 'DELTAGATE_REDIS_URL',
    default: '',
    description: 'Redis for the BullMQ queue (`noeviction`). Unset: an in-process queue.',
  },
  {
    name: 'DELTAGATE_ADMIN_KEY',
    default: '',
    description:
      'Admin API key (at least 24 characters). Unset: generated, kept in the data dir, printed once.',
  },
  {
    name: 'DELTAGATE_BASE_MODELS',
    default: '',
    description:
      "Hugging Face model directories to register, separated by `,` or `:`; `<dir>#none`, `#nf4` or `#int4` sets that model's serving quantization.",
  },
  {
    name: 'DELTAGATE_PUBLIC_URL',
    default: 'http://localhost:<port>',
    description: 'Base URL clients reach the API at; used in presigned links of the blob directory.',
  },
  {
    name: 'DELTAGATE_LOG_LEVEL',
    default: DEFAULTS.logLevel,
    description: 'pino level: fatal, error, warn, info, debug, trace, silent.',
  },
  {
    name: 'DELTAGATE_LOG_FORMAT',
    default: DEFAULTS.logFormat,
    description:
      '`json` (one JSON object a line, for log shippers) or `pretty` (one readable, coloured line each, for a terminal).',
  },
  {
    name: 'DELTAGATE_CONSOLE_DIR',
    default: '<package>/console/dist',
    description:
      'Built web console served at `/` (`npm run build:console`; built at install). `off`: no console.',
  },
  {
    name: 'DELTAGATE_METRICS_TOKEN',
    default: '',
    description:
      'Bearer token (at least 24 characters) that may scrape `GET /metrics` besides the admin key. Unset: the admin key only.',
  },
  {
    name: 'DELTAGATE_METRICS_ADAPTER_LABELS',
    default: String(DEFAULTS.metricsAdapterLabels),
    description:
      'Adapters (the first seen) that get their own `adapter` label in generation metrics; later ones share `other` (0: none).',
  },
  {
    name: 'DELTAGATE_MAX_DATASET_BYTES',
    default: String(DEFAULTS.maxDatasetBytes),
    description: 'Largest dataset accepted (bytes).',
  },
  {
    name: 'DELTAGATE_MAX_INLINE_DATASET_BYTES',
    default: String(DEFAULTS.maxInlineDatasetBytes),
    description: 'Largest dataset accepted inline by `uploadDataset` (bytes).',
  },
  {
    name: 'DELTAGATE_MAX_ADAPTER_BYTES',
    default: String(DEFAULTS.maxAdapterBytes),
    description: 'Largest adapter weights file accepted (bytes).',
  },
  {
    name: 'DELTAGATE_MAX_INLINE_ADAPTER_BYTES',
    default: String(DEFAULTS.maxInlineAdapterBytes),
    description:
      'Largest adapter weights accepted inline (`importAdapterVersion.weightsBase64`, bytes before base64; at most the adapter limit); larger ones go through `createAdapterUpload`. With the inline dataset limit it sets the /graphql body cap.',
  },
  {
    name: 'DELTAGATE_RATE_LIMIT_PER_MINUTE',
    default: String(DEFAULTS.rateLimitPerMinute),
    description: 'Requests per minute per API key (token bucket).',
  },
  {
    name: 'DELTAGATE_GENERATION_TOKENS_PER_MINUTE',
    default: String(DEFAULTS.generationTokensPerMinute),
    description:
      'Generation tokens per minute per customer (token bucket): each `generate`/`generateStream` reserves maxTokens + its prompt, unused tokens come back; past it RATE_LIMITED with Retry-After.',
  },
  {
    name: 'DELTAGATE_WORKER_CONCURRENCY',
    default: String(DEFAULTS.workerConcurrency),
    description: 'Training jobs one worker runs at once.',
  },
  {
    name: 'DELTAGATE_EXECUTION_PROVIDER',
    default: DEFAULTS.executionProvider,
    description:
      'onnxruntime execution provider: cpu or cuda (on cuda, nf4 serving runs MatMulBnb4 instead of dequantized weights).',
  },
  {
    name: 'DELTAGATE_SERVING_QUANTIZATION',
    default: DEFAULTS.servingQuantization,
    description:
      'Base weights generation serves adapters on: none (fp32), nf4 (the QLoRA training grid) or int4 (the `--quantize int4` grid).',
  },
  {
    name: 'DELTAGATE_KV_CACHE_BYTES',
    default: String(DEFAULTS.kvCacheBytes),
    description:
      'KV-cache pool per served base model (bytes); rows = this ÷ (2·layers·KV heads·max sequence·head dim·4), at most the max batch.',
  },
  {
    name: 'DELTAGATE_GATEWAY_MAX_BATCH',
    default: String(DEFAULTS.gatewayMaxBatch),
    description: 'Most requests one base model decodes at once (continuous batching).',
  },
  {
    name: 'DELTAGATE_GATEWAY_MAX_SEQUENCE',
    default: String(DEFAULTS.gatewayMaxSequence),
    description:
      "Tokens (prompt + completion) one request may hold in the KV cache (capped by the model's context).",
  },
  {
    name: 'DELTAGATE_GATEWAY_PREFILL_TOKENS',
    default: String(DEFAULTS.gatewayPrefillTokens),
    description:
      'Prompt tokens fed per batch step (chunked prefill: long prompts never stall running streams).',
  },
  {
    name: 'DELTAGATE_GATEWAY_ADAPTER_SLOTS',
    default: String(DEFAULTS.gatewayAdapterSlots),
    description: 'Distinct side-loaded adapters in one running batch.',
  },
  {
    name: 'DELTAGATE_ADAPTER_CACHE_BYTES',
    default: String(DEFAULTS.adapterCacheBytes),
    description: 'Parsed adapters kept in host memory (LRU, bytes; pinned adapters come on top).',
  },
  {
    name: 'DELTAGATE_GATEWAY_MAX_RUNNING_PER_CUSTOMER',
    default: String(DEFAULTS.gatewayMaxRunningPerCustomer),
    description: "One customer's share of the running batch (rows); the rest wait their turn.",
  },
  {
    name: 'DELTAGATE_GATEWAY_MAX_QUEUED_PER_CUSTOMER',
    default: String(DEFAULTS.gatewayMaxQueuedPerCustomer),
    description: 'Generation requests one customer may have waiting; past it RATE_LIMITED with a retry hint.',
  },
  {
    name: 'DELTAGATE_GENERATION_TIMEOUT_MS',
    default: String(DEFAULTS.generationTimeoutMs),
    description: 'A generation not finished this long after it was queued is dropped (RATE_LIMITED).',
  },
  {
    name: 'NODE_ENV',
    default: '',
    description: '`production` turns introspection off and hides stack traces.',
  },
];

/** Names the loader reads; anything else `DELTAGATE_*` is a typo worth reporting (see `unknownVariables`). */
export const CONFIG_VARIABLE_NAMES: ReadonlySet<string> = new Set(CONFIG_VARIABLES.map((v) => v.name));

// One schema per variable, each with the message the one-line error shows after the name.
const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const httpUrl = z.url({ protocol: /^https?$/ });
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
// S3 bucket naming rules (the DNS-compatible subset every server accepts).
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
  .refine((s) => !s.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(s));

function read<T>(
  env: NodeJS.ProcessEnv,
  name: string,
  schema: z.ZodType<T>,
  expected: string,
): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const parsed = schema.safeParse(raw.trim());
  if (!parsed.success) {
    // A rejected secret is still a secret: say how long it was, never what it was.
    const got = SECRET_VARIABLES.has(name) ? `${raw.length} characters, not shown` : JSON.stringify(raw);
    throw new ConfigError(name, `${name} must be ${expected} (got ${got})`);
  }
  return parsed.data;
}

const SECRET_VARIABLES = new Set([
  'DELTAGATE_ADMIN_KEY',
  'DELTAGATE_S3_SECRET_ACCESS_KEY',
  'DELTAGATE_METRICS_TOKEN',
]);

function parseDatabaseUrl(raw: string | undefined, dataDir: string): DatabaseConfig {
  const name = 'DELTAGATE_DATABASE_URL';
  if (raw === undefined) return { kind: 'sqlite', file: join(dataDir, 'deltagate.sqlite') };
  if (/^postgres(ql)?:\/\//.test(raw)) {
    try {
      const u = new URL(raw);
      if (u.hostname === '') throw new Error('no host');
    } catch {
      throw new ConfigError(name, `${name} must be a valid postgres:// URL (got ${JSON.stringify(raw)})`);
    }
    return { kind: 'postgres', url: raw };
  }
  if (raw.startsWith('sqlite:')) {
    const path = raw.replace(/^sqlite:(\/\/)?/, '');
    if (path === '')
      throw new ConfigError(name, `${name} must name a file: sqlite://<file> (got ${JSON.stringify(raw)})`);
    if (path === ':memory:') return { kind: 'sqlite', file: ':memory:' };
    return { kind: 'sqlite', file: isAbsolute(path) ? path : resolve(path) };
  }
  throw new ConfigError(
    name,
    `${name} must start with sqlite://, postgres:// or postgresql:// (got ${JSON.stringify(raw)})`,
  );
}

function parseStorage(env: NodeJS.ProcessEnv, dataDir: string): StorageConfig {
  const endpoint = read(env, 'DELTAGATE_S3_ENDPOINT', httpUrl, 'an http(s) URL');
  const bucket = read(env, 'DELTAGATE_S3_BUCKET', bucketName, 'a valid S3 bucket name (3-63 of a-z 0-9 . -)');
  if (endpoint === undefined && bucket === undefined) return { kind: 'fs', dir: join(dataDir, 'blobs') };
  if (bucket === undefined) {
    throw new ConfigError(
      'DELTAGATE_S3_BUCKET',
      'DELTAGATE_S3_BUCKET must be set when DELTAGATE_S3_ENDPOINT is set (got nothing)',
    );
  }
  const region =
    read(env, 'DELTAGATE_S3_REGION', z.string().regex(/^[a-z0-9-]{2,32}$/), 'a region name like us-east-1') ??
    DEFAULTS.s3Region;
  const secret = z.string().min(1).max(256);
  const accessKeyId = read(env, 'DELTAGATE_S3_ACCESS_KEY_ID', secret, 'a non-empty key id') ?? null;
  const secretAccessKey = read(env, 'DELTAGATE_S3_SECRET_ACCESS_KEY', secret, 'a non-empty secret') ?? null;
  if ((accessKeyId === null) !== (secretAccessKey === null)) {
    const missing = accessKeyId === null ? 'DELTAGATE_S3_ACCESS_KEY_ID' : 'DELTAGATE_S3_SECRET_ACCESS_KEY';
    throw new ConfigError(missing, `${missing} must be set together with its pair (got nothing)`);
  }
  const forcePathStyle =
    read(env, 'DELTAGATE_S3_FORCE_PATH_STYLE', bool, 'true or false') ?? endpoint !== undefined;
  return {
    kind: 's3',
    endpoint: endpoint === undefined ? null : endpoint.replace(/\/+$/, ''),
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    forcePathStyle,
  };
}

/** `dir` or `dir#none|nf4|int4` per entry; a bad suffix or an empty directory is a one-line ConfigError. */
function parseBaseModels(raw: string | undefined, fallback: ServingQuantization): BaseModelEntry[] {
  const name = 'DELTAGATE_BASE_MODELS';
  if (raw === undefined || raw === '') return [];
  return splitList(raw).map((entry) => {
    const hash = entry.lastIndexOf('#');
    const dir = (hash < 0 ? entry : entry.slice(0, hash)).trim();
    const suffix = hash < 0 ? null : entry.slice(hash + 1).trim();
    if (dir === '' || (suffix !== null && !(SERVING_QUANTIZATIONS as readonly string[]).includes(suffix))) {
      throw new ConfigError(
        name,
        `${name} entries must be <dir> or <dir>#${SERVING_QUANTIZATIONS.join('|')} (got ${JSON.stringify(entry)})`,
      );
    }
    return { dir: resolve(dir), servingQuantization: (suffix as ServingQuantization | null) ?? fallback };
  });
}

function splitList(raw: string): string[] {
  return raw
    .split(new RegExp(`[,${delimiter === ';' ? ';' : ':'}]`))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = read(env, 'DELTAGATE_PORT', intIn(1, 65535), 'an integer 1-65535') ?? DEFAULTS.port;
  const host =
    read(env, 'DELTAGATE_HOST', z.string().regex(/^[A-Za-z0-9.:_-]+$/), 'a host name or IP') ?? DEFAULTS.host;
  const dataDir = resolve(
    read(env, 'DELTAGATE_DATA_DIR', z.string().min(1), 'a directory path') ?? DEFAULTS.dataDir,
  );
  const database = parseDatabaseUrl(env.DELTAGATE_DATABASE_URL?.trim() || undefined, dataDir);
  const storage = parseStorage(env, dataDir);
  const redisUrl =
    read(env, 'DELTAGATE_REDIS_URL', z.url({ protocol: /^rediss?$/ }), 'a redis:// or rediss:// URL') ?? null;
  const adminKey =
    read(
      env,
      'DELTAGATE_ADMIN_KEY',
      z.string().min(24).max(512).regex(/^\S+$/),
      'at least 24 characters, no spaces',
    ) ?? null;
  const servingQuantization =
    read(env, 'DELTAGATE_SERVING_QUANTIZATION', z.enum(SERVING_QUANTIZATIONS), 'none, nf4 or int4') ??
    DEFAULTS.servingQuantization;
  const baseModels = parseBaseModels(env.DELTAGATE_BASE_MODELS?.trim(), servingQuantization);
  const publicUrl = (
    read(env, 'DELTAGATE_PUBLIC_URL', httpUrl, 'an http(s) URL') ?? `http://localhost:${port}`
  ).replace(/\/+$/, '');
  const logLevel =
    read(env, 'DELTAGATE_LOG_LEVEL', z.enum(LOG_LEVELS), `one of ${LOG_LEVELS.join('|')}`) ??
    DEFAULTS.logLevel;
  const logFormat =
    read(env, 'DELTAGATE_LOG_FORMAT', z.enum(['json', 'pretty']), 'json or pretty') ?? DEFAULTS.logFormat;
  const metrics: MetricsConfig = {
    token:
      read(
        env,
        'DELTAGATE_METRICS_TOKEN',
        z.string().min(24).max(512).regex(/^\S+$/),
        'at least 24 characters, no spaces',
      ) ?? null,
    adapterLabels:
      read(env, 'DELTAGATE_METRICS_ADAPTER_LABELS', intIn(0, 1000), 'an integer 0-1000') ??
      DEFAULTS.metricsAdapterLabels,
  };
  const bytes = (name: string, dflt: number) =>
    read(env, name, intIn(1, Number.MAX_SAFE_INTEGER), 'a positive integer number of bytes') ?? dflt;
  const maxAdapterBytes = bytes('DELTAGATE_MAX_ADAPTER_BYTES', DEFAULTS.maxAdapterBytes);
  const limits: Limits = {
    maxDatasetBytes: bytes('DELTAGATE_MAX_DATASET_BYTES', DEFAULTS.maxDatasetBytes),
    maxInlineDatasetBytes: bytes('DELTAGATE_MAX_INLINE_DATASET_BYTES', DEFAULTS.maxInlineDatasetBytes),
    maxAdapterBytes,
    // A smaller adapter limit lowers the inline one with it (inline is only the transport).
    maxInlineAdapterBytes: Math.min(
      bytes('DELTAGATE_MAX_INLINE_ADAPTER_BYTES', DEFAULTS.maxInlineAdapterBytes),
      maxAdapterBytes,
    ),
    rateLimitPerMinute:
      read(env, 'DELTAGATE_RATE_LIMIT_PER_MINUTE', intIn(1, 1_000_000), 'an integer 1-1000000') ??
      DEFAULTS.rateLimitPerMinute,
    generationTokensPerMinute:
      read(
        env,
        'DELTAGATE_GENERATION_TOKENS_PER_MINUTE',
        intIn(1, 1_000_000_000),
        'an integer 1-1000000000',
      ) ?? DEFAULTS.generationTokensPerMinute,
  };
  if (limits.maxInlineDatasetBytes > limits.maxDatasetBytes) {
    throw new ConfigError(
      'DELTAGATE_MAX_INLINE_DATASET_BYTES',
      `DELTAGATE_MAX_INLINE_DATASET_BYTES must be at most DELTAGATE_MAX_DATASET_BYTES (got ${limits.maxInlineDatasetBytes} > ${limits.maxDatasetBytes})`,
    );
  }
  const workerConcurrency =
    read(env, 'DELTAGATE_WORKER_CONCURRENCY', intIn(1, 64), 'an integer 1-64') ?? DEFAULTS.workerConcurrency;
  const executionProvider =
    read(env, 'DELTAGATE_EXECUTION_PROVIDER', z.enum(['cpu', 'cuda']), 'cpu or cuda') ??
    DEFAULTS.executionProvider;
  const count = (name: string, max: number, dflt: number) =>
    read(env, name, intIn(1, max), `an integer 1-${max}`) ?? dflt;
  const gateway: GatewayConfig = {
    kvCacheBytes: bytes('DELTAGATE_KV_CACHE_BYTES', DEFAULTS.kvCacheBytes),
    maxBatch: count('DELTAGATE_GATEWAY_MAX_BATCH', 1024, DEFAULTS.gatewayMaxBatch),
    maxSequence: count('DELTAGATE_GATEWAY_MAX_SEQUENCE', 1 << 20, DEFAULTS.gatewayMaxSequence),
    prefillTokens: count('DELTAGATE_GATEWAY_PREFILL_TOKENS', 1 << 16, DEFAULTS.gatewayPrefillTokens),
    adapterSlots: count('DELTAGATE_GATEWAY_ADAPTER_SLOTS', 4096, DEFAULTS.gatewayAdapterSlots),
    adapterCacheBytes: bytes('DELTAGATE_ADAPTER_CACHE_BYTES', DEFAULTS.adapterCacheBytes),
    maxRunningPerCustomer: count(
      'DELTAGATE_GATEWAY_MAX_RUNNING_PER_CUSTOMER',
      1024,
      DEFAULTS.gatewayMaxRunningPerCustomer,
    ),
    maxQueuedPerCustomer: count(
      'DELTAGATE_GATEWAY_MAX_QUEUED_PER_CUSTOMER',
      100_000,
      DEFAULTS.gatewayMaxQueuedPerCustomer,
    ),
    requestTimeoutMs: count('DELTAGATE_GENERATION_TIMEOUT_MS', 86_400_000, DEFAULTS.generationTimeoutMs),
  };
  return {
    port,
    host,
    dataDir,
    database,
    storage,
    redisUrl,
    adminKey,
    baseModels,
    servingQuantization,
    publicUrl,
    logLevel,
    logFormat,
    production: env.NODE_ENV === 'production',
    limits,
    workerConcurrency,
    executionProvider,
    gateway,
    metrics,
    consoleDir: parseConsoleDir(env.DELTAGATE_CONSOLE_DIR?.trim()),
  };
}

function parseConsoleDir(raw: string | undefined): string | null | undefined {
  if (raw === undefined || raw === '') return undefined;
  return raw === 'off' ? null : resolve(raw);
}

/** README / docs configuration table, generated from CONFIG_VARIABLES so it cannot drift. */
export function configTableMarkdown(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = CONFIG_VARIABLES.map(
    (v) =>
      `| \`${v.name}\` | ${v.default === '' ? '(unset)' : `\`${cell(v.default)}\``} | ${cell(v.description)} |`,
  );
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n') + '\n';
}

/** `DELTAGATE_*` names in `env` that the loader does not know (typos); the server logs them as a warning. */
export function unknownVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(env)
    .filter((k) => k.startsWith('DELTAGATE_') && !CONFIG_VARIABLE_NAMES.has(k))
    .filter((k) => !k.startsWith('DELTAGATE_TEST_') && k !== 'DELTAGATE_DEBUG')
    .sort();
}
