/**
 * `GET /metrics`: Prometheus text format (prom-client, one registry per server). What it counts:
 *
 * - HTTP: requests by route pattern (never the raw path), method and status; durations by route.
 * - Generation (every request the gateway ran, GraphQL and /v1 alike, from `GenerationService.observe`):
 *   requests by outcome, prompt and completion tokens, time to first token and time per output token
 *   histograms — per base model, and per adapter only for the first `maxAdapterLabels` adapters seen
 *   (adapter ids, never tenant-chosen names); later ones share `adapter="other"`, the base model is
 *   `adapter="none"`.
 * - Collected on scrape: running batch size, queue depth, steps and KV slots per base model and the adapter
 *   cache's hits / misses / evictions / bytes (`generation.gateway.stats()`), training jobs by status (SQL)
 *   and BullMQ's job counts by state (with Redis), each through a source the composition root passes in.
 *   A source that fails or takes over 2 s is left out of that scrape (its series absent, the failure
 *   logged), never failing the scrape.
 *
 * Access: the admin key, or `DELTAGATE_METRICS_TOKEN` when set (a scraper then needs no key that can
 * manage customers). Customer keys get 403: the numbers are every tenant's load, and adapter ids.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { asDeltagateError } from '../resolvers/error-mapping.js';
import type { RateLimiter } from '../resolvers/security/index.js';
import type { GenerationObservation } from '../services/generation.js';
import type { Services } from '../services/index.js';
import { authorize } from './graphql.js';
import { sendError } from './json.js';
import type { Route } from './router.js';

export interface MetricsOptions {
  services: Services;
  limiter: RateLimiter;
  logger: Logger;
  /** DELTAGATE_METRICS_TOKEN: a bearer token for scrapers besides the admin key; null: admin key only. */
  token: string | null;
  /** Adapters that get their own label value (first seen, first served); the rest are "other". */
  maxAdapterLabels: number;
  /** Training jobs by status (SQL), read on each scrape. */
  trainingJobCounts?: () => Promise<Record<string, number>>;
  /** The training queue's job counts by state (BullMQ), read on each scrape; absent without Redis. */
  queueCounts?: () => Promise<Record<string, number>>;
}

const SOURCE_TIMEOUT_MS = 2_000;
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Counters fed from cumulative totals read on scrape: each scrape adds what changed since the last. */
class Deltas {
  private readonly last = new Map<Counter<string>, Map<string, number>>();
  add(counter: Counter<string>, labels: Record<string, string>, total: number): void {
    let seen = this.last.get(counter);
    if (seen === undefined) this.last.set(counter, (seen = new Map()));
    const key = JSON.stringify(labels);
    const delta = total - (seen.get(key) ?? 0);
    seen.set(key, total);
    counter.inc(labels, Math.max(0, delta));
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly adapterLabels = new Map<string, string>();
  private readonly deltas = new Deltas();
  private readonly unobserve: () => void;

  private readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  private readonly httpDuration: Histogram<'route'>;
  private readonly genRequests: Counter<'base_model' | 'adapter' | 'outcome'>;
  private readonly promptTokens: Counter<'base_model' | 'adapter'>;
  private readonly completionTokens: Counter<'base_model' | 'adapter'>;
  private readonly ttft: Histogram<'base_model' | 'adapter'>;
  private readonly itl: Histogram<'base_model' | 'adapter'>;
  private readonly running: Gauge<'base_model'>;
  private readonly waiting: Gauge<'base_model'>;
  private readonly kvSlots: Gauge<'base_model' | 'state'>;
  private readonly steps: Counter<'base_model'>;
  private readonly cacheEvents: Counter<'event'>;
  private readonly cacheBytes: Gauge;
  private readonly cacheEntries: Gauge;
  private readonly trainingJobs: Gauge<'status'>;
  private readonly queueJobs: Gauge<'state'>;

  constructor(private readonly o: MetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'deltagate_' });
    this.httpRequests = new Counter({
      name: 'deltagate_http_requests_total',
      help: 'HTTP requests answered, by route pattern, method and status (499: the client left first).',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'deltagate_http_request_duration_seconds',
      help: 'HTTP request duration by route pattern (a stream counts until its end).',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    const gen = ['base_model', 'adapter'] as const;
    this.genRequests = new Counter({
      name: 'deltagate_generation_requests_total',
      help: 'Generations the gateway ran, by base model, adapter and outcome (ok, aborted or an error code).',
      labelNames: [...gen, 'outcome'],
      registers,
    });
    this.promptTokens = new Counter({
      name: 'deltagate_generation_prompt_tokens_total',
      help: 'Prompt tokens of finished generations.',
      labelNames: gen,
      registers,
    });
    this.completionTokens = new Counter({
      name: 'deltagate_generation_completion_tokens_total',
      help: 'Completion tokens of finished generations.',
      labelNames: gen,
      registers,
    });
    this.ttft = new Histogram({
      name: 'deltagate_generation_time_to_first_token_seconds',
      help: 'From queueing to the first text delta (queue wait and prefill included).',
      labelNames: gen,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.itl = new Histogram({
      name: 'deltagate_generation_inter_token_latency_seconds',
      help: 'Mean time per output token after the first, one observation per generation.',
      labelNames: gen,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.running = new Gauge({
      name: 'deltagate_gateway_running',
      help: 'Rows in the running batch (the batch size), per base model.',
      labelNames: ['base_model'],
      registers,
    });
    this.waiting = new Gauge({
      name: 'deltagate_gateway_waiting',
      help: 'Generation requests waiting for a row (the queue depth), per base model.',
      labelNames: ['base_model'],
      registers,
    });
    this.kvSlots = new Gauge({
      name: 'deltagate_gateway_kv_slots',
      help: 'KV-cache slots per base model, by state (total, free).',
      labelNames: ['base_model', 'state'],
      registers,
    });
    this.steps = new Counter({
      name: 'deltagate_gateway_steps_total',
      help: 'Batch steps the gateway ran, per base model.',
      labelNames: ['base_model'],
      registers,
    });
    this.cacheEvents = new Counter({
      name: 'deltagate_adapter_cache_events_total',
      help: 'Host adapter cache lookups and evictions, by event (hit, miss, eviction).',
      labelNames: ['event'],
      registers,
    });
    this.cacheBytes = new Gauge({
      name: 'deltagate_adapter_cache_bytes',
      help: 'Bytes of parsed adapters held in host memory (pinned included).',
      registers,
    });
    this.cacheEntries = new Gauge({
      name: 'deltagate_adapter_cache_entries',
      help: 'Adapters held in host memory (pinned included).',
      registers,
    });
    this.trainingJobs = new Gauge({
      name: 'deltagate_training_jobs',
      help: 'Training jobs by status (from SQL, read on scrape).',
      labelNames: ['status'],
      registers,
    });
    this.queueJobs = new Gauge({
      name: 'deltagate_training_queue_jobs',
      help: 'Jobs in the BullMQ training queue by state (read on scrape; only with Redis).',
      labelNames: ['state'],
      registers,
    });
    this.unobserve = o.services.generation.observe((g) => this.onGeneration(g));
  }

  /** One answered (or abandoned) HTTP request; `route` is the router's pattern, null when none matched. */
  observeRequest(route: string | null, method: string, status: number, seconds: number): void {
    const r = route ?? 'unmatched';
    const m = METHODS.has(method) ? method : 'other';
    this.httpRequests.inc({ route: r, method: m, status: String(status) });
    this.httpDuration.observe({ route: r }, seconds);
  }

  private adapterLabel(adapterId: string | null): string {
    if (adapterId === null) return 'none';
    let label = this.adapterLabels.get(adapterId);
    if (label === undefined) {
      if (this.adapterLabels.size >= this.o.maxAdapterLabels) return 'other';
      label = adapterId;
      this.adapterLabels.set(adapterId, label);
    }
    return label;
  }

  private onGeneration(g: GenerationObservation): void {
    const labels = { base_model: g.baseModelId, adapter: this.adapterLabel(g.adapterId) };
    this.genRequests.inc({ ...labels, outcome: g.outcome === 'ok' ? 'ok' : g.outcome.toLowerCase() });
    if (g.outcome !== 'ok') return;
    this.promptTokens.inc(labels, g.promptTokens);
    this.completionTokens.inc(labels, g.completionTokens);
    if (g.firstDeltaMs !== null) this.ttft.observe(labels, g.firstDeltaMs / 1000);
    if (g.perTokenMs !== null) this.itl.observe(labels, g.perTokenMs / 1000);
  }

  /** Reads the sources (gateway, SQL, queue) into their gauges and counters; a failing source is skipped. */
  private async refresh(): Promise<void> {
    const { logger } = this.o;
    const gateway = withTimeout(
      this.o.services.generation.gateway.stats(),
      SOURCE_TIMEOUT_MS,
      'gateway stats',
    ).then((s) => {
      this.running.reset();
      this.waiting.reset();
      this.kvSlots.reset();
      for (const [model, m] of Object.entries(s.models)) {
        this.running.set({ base_model: model }, m.running);
        this.waiting.set({ base_model: model }, m.waiting);
        this.kvSlots.set({ base_model: model, state: 'total' }, m.kvSlots);
        this.kvSlots.set({ base_model: model, state: 'free' }, m.kvSlotsFree);
        this.deltas.add(this.steps, { base_model: model }, m.steps);
      }
      const c = s.adapterCache;
      this.deltas.add(this.cacheEvents, { event: 'hit' }, c.hits);
      this.deltas.add(this.cacheEvents, { event: 'miss' }, c.misses);
      this.deltas.add(this.cacheEvents, { event: 'eviction' }, c.evictions);
      this.cacheBytes.set(c.bytes);
      this.cacheEntries.set(c.entries);
    });
    const counts = (
      source: (() => Promise<Record<string, number>>) | undefined,
      gauge: Gauge<string>,
      label: string,
      what: string,
    ) =>
      source === undefined
        ? Promise.resolve()
        : withTimeout(source(), SOURCE_TIMEOUT_MS, what).then(
            (byKey) => {
              gauge.reset();
              for (const [k, n] of Object.entries(byKey)) gauge.set({ [label]: k }, n);
            },
            (err: unknown) => {
              gauge.reset(); // absent from this scrape rather than stale
              throw err;
            },
          );
    const results = await Promise.allSettled([
      gateway,
      counts(this.o.trainingJobCounts, this.trainingJobs, 'status', 'training job counts'),
      counts(this.o.queueCounts, this.queueJobs, 'state', 'queue counts'),
    ]);
    for (const r of results)
      if (r.status === 'rejected')
        logger.warn({ err: r.reason }, 'a metrics source failed; left out of this scrape');
  }

  /** Admin key or metrics token; 401 for no or a bad key, 403 for a customer key. */
  private async allowed(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const header = typeof req.headers.authorization === 'string' ? req.headers.authorization : null;
    const token = this.o.token;
    if (token !== null && header !== null && /^Bearer /i.test(header)) {
      if (timingSafeEqual(digest(header.slice(7).trim()), digest(token))) return true;
    }
    try {
      const actor = await authorize(
        this.o.services,
        this.o.limiter,
        header,
        req.socket.remoteAddress ?? 'unknown',
      );
      if (actor.role === 'ADMIN') return true;
      sendError(res, 403, 'FORBIDDEN', '/metrics needs the admin key or DELTAGATE_METRICS_TOKEN');
    } catch (err) {
      const known = asDeltagateError(err);
      if (known === null) throw err;
      const wait = Number(known.details?.retryAfterSeconds);
      if (known.code === 'RATE_LIMITED') res.setHeader('retry-after', String(Math.ceil(wait) || 1));
      sendError(res, known.code === 'RATE_LIMITED' ? 429 : 401, known.code, known.message);
    }
    return false;
  }

  route(): Route {
    return {
      methods: ['GET'],
      pattern: '/metrics',
      handler: async (req, res) => {
        if (!(await this.allowed(req, res))) return;
        await this.refresh();
        const text = await this.registry.metrics();
        res.writeHead(200, {
          'content-type': this.registry.contentType,
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
      },
    };
  }

  close(): void {
    this.unobserve();
    this.registry.clear();
  }
}
