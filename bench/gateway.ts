/**
 * The continuous-batching gateway end to end, through the service layer (GenerationService on SQLite + the
 * directory blob store, a ≈100M-parameter byte-vocabulary Llama written to a temp dir, PEFT adapters imported
 * as versions): (a) one stream alone, (b) 32 concurrent requests over 16 adapters, (c) the same on the base
 * model, (d) 64 rows with 64 distinct adapters vs 64 rows on one adapter, (e) 200 streams over 3× more
 * adapters than the host adapter cache holds, (f) an adapter's cold load vs a raw blob GET, (g) batch-8 decode
 * vs the GEMV roofline measured in the same run; (b') and (g') repeat (b) and (g) on KV slabs sized to the
 * requests (maxSequence 384) instead of the model's 1024-token context. Prints markdown tables
 * (docs/PERFORMANCE.md, "Gateway") and one BENCH_RESULT line; `--write` replaces the gateway results section
 * of docs/PERFORMANCE.md. `node --import tsx bench/gateway.ts [--quick] [--write]` (full ≈ 20 min on the
 * shared 2 cores under load, quick ≈ 3–4 min).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { parseModelConfig } from '../src/engine/formats/hf-config.js';
import { parsePeftAdapter } from '../src/engine/formats/peft.js';
import { adapterBytes } from '../src/gateway/adapter-cache.js';
import { KvPool } from '../src/inference/kv-pool.js';
import type { AdapterMode, GenerationService } from '../src/services/generation.js';
import { engineLoadOptions } from '../src/services/serving-grid.js';
import { ADAPTER_FILES } from '../src/storage/keys.js';
import { benchArgs, emitResult } from './lib/args.js';
import { linearParams } from './lib/bench-model.js';
import {
  counters,
  diff,
  median,
  percentile,
  rssMiB,
  runConcurrent,
  sampleRss,
  timedGenerate,
  timedStream,
  type Counters,
  type LoadRequest,
  type RequestOutcome,
} from './lib/gateway-load.js';
import { GATEWAY_MODEL_CONFIG, openGatewayBench, type BenchAdapter } from './lib/gateway-setup.js';
import { openGemvProbe } from './lib/gemv-probe.js';
import { peakRssMiB } from './lib/timing.js';

const args = benchArgs();
const quick = args.has('quick');
const P = quick
  ? {
      singleTokens: 16,
      concurrent: 8,
      tokens: 16,
      wide: 16,
      wideTokens: 16,
      streams: 40,
      streamTokens: 16,
      longTokens: 48,
      coldReps: 3,
    }
  : {
      singleTokens: 48,
      concurrent: 32,
      tokens: 48,
      wide: 64,
      wideTokens: 32,
      streams: 200,
      streamTokens: 16,
      longTokens: 256,
      coldReps: 7,
    };
/** Adapters of (b) (spread over the customers), host-cache capacity N of (e) and the 3N adapters it cycles. */
const MIXED_ADAPTERS = 16;
const CACHE_HOLDS = 8;
const CHURN_ADAPTERS = 3 * CACHE_HOLDS;
const LONG_BATCH = 8;
/** (g'): KV slabs sized to what the long requests need (66-token prompts + up to 256 new tokens). */
const SHORT_SLAB = 384;
const CONTEXT = 1024;

const log = (msg: string) => console.error(`[${(performance.now() / 1000).toFixed(0)} s] ${msg}`);
const loadStart = os.loadavg();

const config = parseModelConfig(GATEWAY_MODEL_CONFIG);
const slotBytes = KvPool.slotBytes(config, CONTEXT);
const wideRows = 64;
/** Gateway options for every service here: 64 rows of the full 1024-token context fit. */
const serveOptions = {
  maxBatch: wideRows,
  kvCacheBytes: wideRows * slotBytes,
  adapterSlots: 64,
  maxRunningPerCustomer: 64,
  // 200 streams on 2 cores take minutes; the 120 s default deadline would fail the tail of the queue.
  requestTimeoutMs: 900_000,
};

log('setup: model, database, blob store, customers, adapters');
const tSetup = performance.now();
const bench = await openGatewayBench({
  customers: 3,
  adapters: Math.max(MIXED_ADAPTERS, P.wide, CHURN_ADAPTERS),
  generation: serveOptions,
  onProgress: log,
});
const setupMs = performance.now() - tSetup;
const { base, adapters, customers } = bench;
const load = engineLoadOptions(base, bench.services.runtime);
const grid =
  base.servingQuantization === 'nf4' && load.nf4Execution === 'dequantized'
    ? 'nf4 (the default grid), run on the CPU as its fp32 dequantization'
    : `${base.servingQuantization}${load.nf4Execution ? ` (${load.nf4Execution})` : ''}`;

const prompt = (i: number) => `Request ${i}: summarize ticket #${1000 + i} for the account team, please.`;
const onAdapter = (i: number, a: BenchAdapter, maxTokens: number, mode?: AdapterMode): LoadRequest => ({
  actor: a.owner.actor,
  input: { adapter: a.name, prompt: prompt(i), maxTokens, temperature: 0, ...(mode ? { mode } : {}) },
});
const onBase = (i: number, maxTokens: number): LoadRequest => ({
  actor: customers[i % customers.length]!.actor,
  input: { adapter: null, prompt: prompt(i), maxTokens, temperature: 0 },
});

/** Completion tokens recorded in the usage counters (every path, streams included, counts there). */
async function completionTokens(): Promise<number> {
  let n = 0;
  for (const c of customers) n += (await bench.services.repos.usage.get(c.id)).completionTokens;
  return n;
}

interface Phase {
  name: string;
  mode: string;
  requests: number;
  errors: number;
  firstError: string | null;
  wallMs: number;
  completionTokens: number;
  tokensPerSecond: number;
  latency: number[];
  /** Streams whose first chunk carried text: call → that chunk. */
  ttft: number[];
  /** Streams that showed no text before their final chunk. */
  noTextUntilEnd: number;
  sched: Counters;
}

async function phase(
  gen: GenerationService,
  name: string,
  mode: string,
  requests: readonly LoadRequest[],
  call: (gen: GenerationService, r: LoadRequest) => Promise<RequestOutcome>,
): Promise<Phase> {
  log(`${name}: ${requests.length} request(s)`);
  const c0 = await counters(gen, base.id);
  const u0 = await completionTokens();
  const { outcomes, wallMs } = await runConcurrent(requests, (r) => call(gen, r));
  const tokens = (await completionTokens()) - u0;
  const failed = outcomes.filter((o) => !o.ok);
  const p: Phase = {
    name,
    mode,
    requests: requests.length,
    errors: failed.length,
    firstError: failed[0]?.error ?? null,
    wallMs,
    completionTokens: tokens,
    tokensPerSecond: tokens / (wallMs / 1000),
    latency: outcomes.filter((o) => o.ok).map((o) => o.ms),
    ttft: outcomes.flatMap((o) => (o.ttftMs !== null && o.firstChunkText ? [o.ttftMs] : [])),
    noTextUntilEnd: outcomes.filter((o) => o.ok && o.firstChunkText === false).length,
    sched: diff(await counters(gen, base.id), c0),
  };
  log(
    `  ${(wallMs / 1000).toFixed(1)} s, ${tokens} tokens, ${p.tokensPerSecond.toFixed(1)} tok/s, ` +
      `${p.sched.steps} steps, ${p.errors} errors${p.firstError ? ` (${p.firstError})` : ''}`,
  );
  return p;
}

const gen1 = (gen: GenerationService, r: LoadRequest) => timedGenerate(gen, r);
const stream1 = (gen: GenerationService, r: LoadRequest) => timedStream(gen, r);

/** Builds the sessions and grows onnxruntime's buffers for a batch shape (prefill and a few decode steps). */
async function warm(gen: GenerationService, requests: readonly LoadRequest[]): Promise<void> {
  await phase(
    gen,
    'warm-up',
    '',
    requests.map((r) => ({ ...r, input: { ...r.input, maxTokens: 4 } })),
    gen1,
  );
}

/**
 * Runs `requests` (all at once) while sampling the scheduler every 20 ms; ms per step over the longest run
 * of samples in which exactly those rows decoded (no prefill, nobody joined or left).
 */
async function steadyDecode(
  gen: GenerationService,
  name: string,
  requests: readonly LoadRequest[],
): Promise<{ phase: Phase; steps: number; msPerStep: number }> {
  const { scheduler } = await gen.gateway.model(base);
  const samples: {
    t: number;
    steps: number;
    decode: number;
    prefill: number;
    running: number;
    waiting: number;
  }[] = [];
  const sampler = setInterval(() => {
    const st = scheduler.stats();
    samples.push({
      t: performance.now(),
      steps: st.steps,
      decode: st.decodeTokens,
      prefill: st.prefillTokens,
      running: st.running,
      waiting: st.waiting,
    });
  }, 20);
  const p = await phase(gen, name, 'base', requests, gen1);
  clearInterval(sampler);
  const n = requests.length;
  const steady = (x: (typeof samples)[number]) => x.running === n && x.waiting === 0;
  let best = { from: 0, to: 0 };
  for (let i = 0; i < samples.length;) {
    let j = i;
    while (
      j + 1 < samples.length &&
      steady(samples[j]!) &&
      steady(samples[j + 1]!) &&
      samples[j + 1]!.prefill === samples[j]!.prefill &&
      samples[j + 1]!.decode - samples[j]!.decode === n * (samples[j + 1]!.steps - samples[j]!.steps)
    )
      j++;
    if (samples[j]!.steps - samples[i]!.steps > samples[best.to]!.steps - samples[best.from]!.steps)
      best = { from: i, to: j };
    i = j + 1;
  }
  const a = samples[best.from];
  const z = samples[best.to];
  const steps = a && z ? z.steps - a.steps : 0;
  return { phase: p, steps, msPerStep: steps > 0 ? (z!.t - a!.t) / steps : NaN };
}

const tLoad = performance.now();
const s1 = bench.services.generation;
await warm(s1, [onAdapter(0, adapters[0]!, 2, 'SIDELOAD')]);
await warm(s1, [onBase(0, 2)]);
const firstLoadMs = performance.now() - tLoad;
// A second gateway whose KV slabs hold only what these requests need (maxSequence SHORT_SLAB instead of the
// model's 1024): (b') and (g') run on it, alternating with their 1024-token counterparts where they can.
const s4 = bench.generationService({
  ...serveOptions,
  maxSequence: SHORT_SLAB,
  kvCacheBytes: wideRows * KvPool.slotBytes(config, SHORT_SLAB),
});
await warm(s4, [onBase(0, 2)]);

// (a) One stream alone, side-loaded (SIDELOAD: AUTO would merge a lone adapter after 32 steps). Its three
// runs are spread over (b) and (c), so that the median sees the load those phases saw.
const single: Phase[] = [];
const singleRun = async () =>
  single.push(
    await phase(
      s1,
      `(a) run ${single.length + 1}`,
      'SIDELOAD',
      [onAdapter(single.length, adapters[0]!, P.singleTokens, 'SIDELOAD')],
      gen1,
    ),
  );

// (b) Concurrent requests over 16 adapters, each from the adapter's owner; AUTO (the default mode).
const mixed = Array.from({ length: P.concurrent }, (_, i) =>
  onAdapter(i, adapters[i % MIXED_ADAPTERS]!, P.tokens),
);
await warm(s1, mixed);
await warm(s4, mixed);
await singleRun();
const b = await phase(s1, '(b) adapters, generate', 'AUTO', mixed, gen1);
const bShort = await phase(s4, `(b') adapters, ${SHORT_SLAB}-token slabs`, 'AUTO', mixed, gen1);
await singleRun();
const bStream = await phase(s1, '(b) adapters, generateStream', 'AUTO', mixed, stream1);

// (c) The same requests on the base model.
const baseReqs = Array.from({ length: P.concurrent }, (_, i) => onBase(i, P.tokens));
await warm(s1, baseReqs);
const c = await phase(s1, '(c) base model, generate', 'base', baseReqs, gen1);
await singleRun();
const singleMedian = [...single].sort((x, y) => x.tokensPerSecond - y.tokensPerSecond)[1]!;

// (g) Batch-8 decode vs the GEMV roofline: the scheduler's step counter sampled while exactly the 8 rows
// decode; two rounds on 1024-token slabs (g) alternating with two on SHORT_SLAB-token slabs (g'), the GEMV
// probe before each round and at the end, so all see the same machine load.
log('(g) GEMV probe');
const probe = await openGemvProbe({ mib: 512 });
const probeBytes = probe.bytes;
await probe.run();
const gemvMs: number[] = [];
const probeRuns = async () => {
  for (let i = 0; i < 2; i++) gemvMs.push(await probe.run());
};
const longReqs = Array.from({ length: LONG_BATCH }, (_, i) => onBase(100 + i, Math.round(P.longTokens / 2)));
const longRounds: Awaited<ReturnType<typeof steadyDecode>>[] = [];
const shortRounds: Awaited<ReturnType<typeof steadyDecode>>[] = [];
for (let round = 1; round <= 2; round++) {
  await probeRuns();
  longRounds.push(
    await steadyDecode(s1, `(g) round ${round}: batch ${LONG_BATCH}, ${CONTEXT}-token slabs`, longReqs),
  );
  await probeRuns();
  shortRounds.push(
    await steadyDecode(s4, `(g') round ${round}: batch ${LONG_BATCH}, ${SHORT_SLAB}-token slabs`, longReqs),
  );
}
await probeRuns();
await probe.release();
await s4.close();
/** Both rounds' windows together: total time ÷ total steps. */
const pooled = (rounds: typeof longRounds) => {
  const steps = rounds.reduce((n, r) => n + r.steps, 0);
  const ms = rounds.reduce((n, r) => n + (r.steps > 0 ? r.msPerStep * r.steps : 0), 0);
  return { steps, msPerStep: steps > 0 ? ms / steps : NaN };
};
const long = pooled(longRounds);
const longShort = pooled(shortRounds);

// (f) Cold load of one adapter (blob GET + SHA-256 + parse, through the host cache) vs a raw GET of its weights.
log('(f) cold load vs raw blobs.get');
const coldVersion = adapters[1]!.version;
const cold: number[] = [];
const raw: number[] = [];
let rawBytes = 0;
for (let r = 0; r < P.coldReps; r++) {
  const timeCold = async () => {
    s1.gateway.cache.delete(coldVersion.id);
    const t = performance.now();
    await s1.gateway.cache.get(coldVersion, base.modelConfig);
    cold.push(performance.now() - t);
  };
  const timeRaw = async () => {
    const t = performance.now();
    rawBytes = (await bench.services.blobs.get(coldVersion.blobPrefix + ADAPTER_FILES.weights)).byteLength;
    raw.push(performance.now() - t);
  };
  if (r % 2 === 0) {
    await timeCold();
    await timeRaw();
  } else {
    await timeRaw();
    await timeCold();
  }
}
await s1.close();
const weightBytes =
  linearParams(config) * 4 +
  config.vocabSize * config.hiddenSize * 4 +
  (2 * config.numLayers + 1) * config.hiddenSize * 4;
const gemvBps = probeBytes / (median(gemvMs) / 1000);
const rooflineTokS = (LONG_BATCH * gemvBps) / weightBytes;
const presentBytes = (slab: number) => LONG_BATCH * KvPool.slotBytes(config, slab);

// (d) 64 rows with 64 distinct adapters vs 64 rows on one adapter, both SIDELOAD, in a fresh gateway.
const s2 = bench.generationService(serveOptions);
const oneAdapter = adapters[0]!;
const oneReqs = Array.from({ length: P.wide }, (_, i) => onAdapter(i, oneAdapter, P.wideTokens, 'SIDELOAD'));
const wideReqs = Array.from({ length: P.wide }, (_, i) =>
  onAdapter(i, adapters[i]!, P.wideTokens, 'SIDELOAD'),
);
await warm(s2, oneReqs);
const dOne = await phase(s2, `(d) ${P.wide} rows, one adapter`, 'SIDELOAD', oneReqs, gen1);
const dWide = await phase(s2, `(d) ${P.wide} rows, ${P.wide} adapters`, 'SIDELOAD', wideReqs, gen1);
// The same one-adapter batch again, now that the distinct adapters stay placed in the slot table.
const dOneAfter = quick
  ? null
  : await phase(s2, `(d) ${P.wide} rows, one adapter, after`, 'SIDELOAD', oneReqs, gen1);
const placedAfter = (await s2.gateway.stats()).models[base.id]?.adapterSlots.length ?? 0;
await s2.close();

// (e) Streams over 3N adapters with a host cache of N adapters, AUTO, all opened at once.
const firstAdapter = parsePeftAdapter(
  JSON.parse(
    Buffer.from(
      await bench.services.blobs.get(adapters[0]!.version.blobPrefix + ADAPTER_FILES.config),
    ).toString('utf8'),
  ),
  await bench.services.blobs.get(adapters[0]!.version.blobPrefix + ADAPTER_FILES.weights),
  base.modelConfig,
);
const oneAdapterBytes = adapterBytes(firstAdapter);
const s3 = bench.generationService({
  ...serveOptions,
  adapterCacheBytes: Math.floor((CACHE_HOLDS + 0.5) * oneAdapterBytes),
  // The burst is ≈ 67 requests per customer, all submitted before the first step admits any: above the
  // default per-customer queue of 64 (see docs/PERFORMANCE.md: the default rejected 7 of them).
  maxQueuedPerCustomer: 128,
});
await warm(s3, [onBase(0, 2)]);
const cache0 = s3.gateway.cache.stats();
const rssBefore = rssMiB();
const maxRssBefore = peakRssMiB();
const rss = sampleRss();
const churn = await phase(
  s3,
  `(e) ${P.streams} streams, ${CHURN_ADAPTERS} adapters`,
  'AUTO',
  Array.from({ length: P.streams }, (_, i) => onAdapter(i, adapters[i % CHURN_ADAPTERS]!, P.streamTokens)),
  stream1,
);
const rssPeak = rss.stop();
const rssAfter = rssMiB();
const maxRssAfter = peakRssMiB();
const cache1 = s3.gateway.cache.stats();
await s3.close();
await bench.close();

// ---------------------------------------------------------------------------------------------------------
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const s = (ms: number) => f(ms / 1000, 2);
const pct = (x: number) => `${f(100 * x, 0)}%`;
const yes = (ok: boolean) => (ok ? 'met' : '**not met**');
function table(head: string[], rows: (string | number)[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}
const meanTokens = (p: Phase) => p.completionTokens / Math.max(1, p.requests - p.errors);
const phaseRow = (p: Phase, label: string) => [
  label,
  p.mode,
  p.requests,
  p.errors,
  f(meanTokens(p), 1),
  s(p.wallMs),
  f(p.tokensPerSecond),
  p.latency.length > 1
    ? `${s(percentile(p.latency, 50))} / ${s(percentile(p.latency, 99))}`
    : s(p.latency[0] ?? NaN),
  p.ttft.length > 0
    ? `${s(percentile(p.ttft, 50))} / ${s(percentile(p.ttft, 99))}` +
      (p.noTextUntilEnd > 0 ? ` (${p.noTextUntilEnd} with no text before the end left out)` : '')
    : '',
  p.sched.steps,
  f(p.wallMs / Math.max(1, p.sched.steps), 0),
  f(p.sched.decodeTokens / Math.max(1, p.sched.steps), 1),
  p.sched.prefillTokens,
  p.sched.switches,
];

const rB = b.tokensPerSecond / singleMedian.tokensPerSecond;
const rBShort = bShort.tokensPerSecond / singleMedian.tokensPerSecond;
const rC = b.tokensPerSecond / c.tokensPerSecond;
const rD = dWide.tokensPerSecond / dOne.tokensPerSecond;
const tokS = (d: { msPerStep: number }) => (1000 * LONG_BATCH) / d.msPerStep;
const rG = tokS(long) / rooflineTokS;
const rGShort = tokS(longShort) / rooflineTokS;
const coldMs = median(cold);
const rawMs = median(raw);

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const loadEnd = os.loadavg();
const la = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ' (`--quick`)' : ''} on ` +
    `${os.cpus().length}× ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, onnxruntime-node ` +
    `${ort.env.versions.common}, default intra-op threads; load average (1 / 5 / 15 min) ${la(loadStart)} at ` +
    `the start, ${la(loadEnd)} at the end.`,
  '',
  `Model: Llama 12 layers, hidden 768, intermediate 2048, 12 / 4 heads (head_dim 64), byte vocabulary 259 ` +
    `(tied), context 1024, random weights; ${(linearParams(config) / 1e6).toFixed(1)}M parameters in the ` +
    `linears. Serving grid: ${grid} (${f(weightBytes / 1e6, 0)} MB of weights read per decode step). ` +
    `Adapters: rank 8, alpha 16, q_proj + v_proj, ${f(oneAdapterBytes / 2 ** 20, 2)} MiB parsed each. ` +
    `Gateway: maxBatch ${serveOptions.maxBatch}, kvCacheBytes ${f(serveOptions.kvCacheBytes / 2 ** 30, 2)} GiB ` +
    `(${serveOptions.maxBatch} rows × ${f(slotBytes / 1e6, 1)} MB), adapterSlots ${serveOptions.adapterSlots}, ` +
    `maxRunningPerCustomer ${serveOptions.maxRunningPerCustomer}, requestTimeoutMs ${serveOptions.requestTimeoutMs}, ` +
    `other options default. Setup (model written, ${adapters.length} adapters imported) ` +
    `${s(setupMs)} s; first model load + both sessions ${s(firstLoadMs)} s. Temperature 0 throughout.`,
  '',
  '#### Requests (all through GenerationService)',
  '',
  table(
    [
      'case',
      'mode',
      'requests',
      'errors',
      'mean completion tokens',
      'wall s',
      'tokens/s',
      'latency p50 / p99 s',
      'first chunk p50 / p99 s',
      'steps',
      'ms/step',
      'decode rows/step',
      'prefill tokens',
      'AUTO switches',
    ],
    [
      ...single.map((p, i) =>
        phaseRow(
          p,
          `(a) one stream alone, run ${i + 1} (${['before (b)', 'between (b) and its stream pass', 'after (c)'][i]})` +
            (p === singleMedian ? ', the median' : ''),
        ),
      ),
      phaseRow(
        b,
        `(b) ${P.concurrent} concurrent, ${Math.min(MIXED_ADAPTERS, P.concurrent)} adapters, generate`,
      ),
      phaseRow(bStream, `(b) same, generateStream`),
      phaseRow(c, `(c) ${P.concurrent} concurrent, base model`),
      phaseRow(bShort, `(b') the requests of (b) on ${SHORT_SLAB}-token KV slabs`),
      phaseRow(dOne, `(d) ${P.wide} concurrent, one adapter`),
      phaseRow(dWide, `(d) ${P.wide} concurrent, ${P.wide} distinct adapters`),
      ...(dOneAfter
        ? [phaseRow(dOneAfter, `(d) one adapter again, ${placedAfter} adapters left placed`)]
        : []),
      phaseRow(churn, `(e) ${P.streams} streams, ${CHURN_ADAPTERS} adapters, cache holds ${CACHE_HOLDS}`),
      ...[0, 1].flatMap((i) => [
        phaseRow(longRounds[i]!.phase, `(g) ${LONG_BATCH} concurrent long generations, round ${i + 1}`),
        phaseRow(shortRounds[i]!.phase, `(g') the same on ${SHORT_SLAB}-token KV slabs, round ${i + 1}`),
      ]),
    ],
  ),
  '',
  '#### Targets',
  '',
  table(
    ['ratio', 'value', 'target', ''],
    [
      [
        `(b) ÷ (a): ${P.concurrent} concurrent over adapters vs one stream alone`,
        `${f(rB, 2)}× (${f(b.tokensPerSecond)} ÷ ${f(singleMedian.tokensPerSecond)})`,
        '≥ 4× (goal 6×)',
        yes(rB >= 4),
      ],
      [
        `(b') ÷ (a): the same on ${SHORT_SLAB}-token KV slabs`,
        `${f(rBShort, 2)}× (${f(bShort.tokensPerSecond)} ÷ ${f(singleMedian.tokensPerSecond)})`,
        '≥ 4× (goal 6×)',
        yes(rBShort >= 4),
      ],
      [
        '(b) ÷ (c): adapters vs base model, same requests',
        `${f(rC, 2)} (${f(b.tokensPerSecond)} ÷ ${f(c.tokensPerSecond)})`,
        '≥ 0.8',
        yes(rC >= 0.8),
      ],
      [
        `(d) ${P.wide} distinct adapters ÷ one adapter`,
        `${f(rD, 2)} (${f(dWide.tokensPerSecond)} ÷ ${f(dOne.tokensPerSecond)})`,
        '≥ 0.8',
        yes(rD >= 0.8),
      ],
      [`(e) errors of ${P.streams} streams`, `${churn.errors}`, '0', yes(churn.errors === 0)],
      [
        `(g) batch-${LONG_BATCH} decode ÷ GEMV roofline (${CONTEXT}-token KV slabs, as configured)`,
        `${pct(rG)} (${f(tokS(long))} ÷ ${f(rooflineTokS)} tok/s)`,
        '≥ 80%',
        yes(rG >= 0.8),
      ],
      [
        `(g') the same with ${SHORT_SLAB}-token KV slabs (maxSequence ${SHORT_SLAB})`,
        `${pct(rGShort)} (${f(tokS(longShort))} ÷ ${f(rooflineTokS)} tok/s)`,
        '≥ 80%',
        yes(rGShort >= 0.8),
      ],
    ],
  ),
  '',
  `#### (e) memory and the host adapter cache (${P.streams} streams, adapter i mod ${CHURN_ADAPTERS}, all opened at once)`,
  '',
  table(
    [
      'RSS before MiB',
      'RSS peak during (sampled) MiB',
      'RSS after MiB',
      'process max RSS before / after MiB',
      'cache hits',
      'misses',
      'evictions',
      'cold loads',
      'cold load mean ms',
    ],
    [
      [
        f(rssBefore, 0),
        f(rssPeak, 0),
        f(rssAfter, 0),
        `${f(maxRssBefore, 0)} / ${f(maxRssAfter, 0)}`,
        cache1.hits - cache0.hits,
        cache1.misses - cache0.misses,
        cache1.evictions - cache0.evictions,
        cache1.coldLoads - cache0.coldLoads,
        f((cache1.coldLoadMs - cache0.coldLoadMs) / Math.max(1, cache1.coldLoads - cache0.coldLoads), 1),
      ],
    ],
  ),
  '',
  `#### (f) cold load of one adapter (median of ${P.coldReps})`,
  '',
  table(
    [
      'adapter_model.safetensors',
      'raw blobs.get ms',
      'cold load ms (GET both files + SHA-256 + parse)',
      'ratio',
    ],
    [[`${f(rawBytes / 2 ** 20, 2)} MiB`, f(rawMs, 2), f(coldMs, 2), `${f(coldMs / rawMs, 1)}×`]],
  ),
  '',
  `#### (g) batch-${LONG_BATCH} decode vs the GEMV roofline`,
  '',
  table(
    [
      'KV slab (tokens)',
      'steps in window',
      'ms/step',
      'decode tokens/s',
      'weight MB/step',
      'present.* outputs MB/step',
      'GEMV GB/s',
      'roofline tokens/s',
      'ratio',
    ],
    [[CONTEXT, long, rG] as const, [SHORT_SLAB, longShort, rGShort] as const].map(([slab, d, r]) => [
      slab,
      d.steps,
      f(d.msPerStep, 1),
      f(tokS(d)),
      f(weightBytes / 1e6, 0),
      f(presentBytes(slab) / 1e6, 0),
      f(gemvBps / 1e9, 2),
      f(rooflineTokS),
      pct(r),
    ]),
  ),
  '',
  `GEMV probe passes (GB/s; two before each round, two at the end): ` +
    gemvMs.map((ms) => f(probeBytes / (ms / 1000) / 1e9, 1)).join(', ') +
    '. The roofline uses their median.',
];
const section = lines.join('\n');
console.log(section);

emitResult({
  bench: 'gateway',
  quick,
  singleTokensPerSecond: singleMedian.tokensPerSecond,
  mixedTokensPerSecond: b.tokensPerSecond,
  mixedLatencyP50Ms: percentile(b.latency, 50),
  mixedLatencyP99Ms: percentile(b.latency, 99),
  mixedTtftP50Ms: percentile(bStream.ttft, 50),
  mixedTtftP99Ms: percentile(bStream.ttft, 99),
  baseTokensPerSecond: c.tokensPerSecond,
  mixedVsSingle: rB,
  mixedShortSlabTokensPerSecond: bShort.tokensPerSecond,
  mixedShortSlabVsSingle: rBShort,
  mixedVsBase: rC,
  wideOneTokensPerSecond: dOne.tokensPerSecond,
  wideDistinctTokensPerSecond: dWide.tokensPerSecond,
  wideOneAfterTokensPerSecond: dOneAfter?.tokensPerSecond ?? null,
  wideDistinctVsOne: rD,
  churnErrors: churn.errors,
  churnRssBeforeMiB: rssBefore,
  churnRssPeakMiB: rssPeak,
  churnRssAfterMiB: rssAfter,
  cache: { ...cache1, coldLoadMsMean: cache1.coldLoadMs / Math.max(1, cache1.coldLoads) },
  coldLoadMs: coldMs,
  rawGetMs: rawMs,
  decodeMsPerStep: long.msPerStep,
  decodeShortSlabMsPerStep: longShort.msPerStep,
  rooflineRatioShortSlab: rGShort,
  gemvBytesPerSecond: gemvBps,
  rooflineRatio: rG,
  loadavgStart: loadStart,
  loadavgEnd: loadEnd,
  peakRssMiB: peakRssMiB(),
});

if (args.has('write')) {
  const path = 'docs/PERFORMANCE.md';
  const doc = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const begin = '<!-- gateway-results:begin -->';
  const end = '<!-- gateway-results:end -->';
  const a = doc.indexOf(begin);
  const z = doc.indexOf(end);
  if (a < 0 || z < a) throw new Error(`${path} lacks the ${begin} … ${end} markers`);
  writeFileSync(path, `${doc.slice(0, a + begin.length)}\n${section}\n${doc.slice(z)}`);
  log(`wrote ${path}`);
}
