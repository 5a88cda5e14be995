/**
 * The main thread's event-loop delay while the gateway decodes: N concurrent streams (half on adapters, half
 * on the base model) through GenerationService on bench/gateway.ts's ≈100M-parameter model, with the model's
 * sessions on the main thread (`sessionThread: 'main'`, the behaviour before session-host.ts) and in its
 * session worker ('worker', the default). The two alternate round by round so both see the same machine
 * load. Reports node:perf_hooks monitorEventLoopDelay (p50 / p99 / max over each round) and decode
 * throughput; prints a markdown table (docs/PERFORMANCE.md, "Gateway: event-loop delay") and one
 * BENCH_RESULT line. `node --import tsx bench/event-loop.ts [--streams 16] [--tokens 32] [--rounds 2]`.
 */
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { KvPool } from '../src/inference/kv-pool.js';
import type { GenerationService } from '../src/services/generation.js';
import { benchArgs, emitResult } from './lib/args.js';
import { counters, diff, median, runConcurrent, timedStream, type LoadRequest } from './lib/gateway-load.js';
import { GATEWAY_MODEL_CONFIG, openGatewayBench } from './lib/gateway-setup.js';
import { parseModelConfig } from '../src/engine/formats/hf-config.js';

const args = benchArgs();
const STREAMS = Number(args.get('streams') ?? 16);
const TOKENS = Number(args.get('tokens') ?? 32);
const ROUNDS = Number(args.get('rounds') ?? 2);
const SLAB = 256;
const log = (msg: string) => console.error(`[${(performance.now() / 1000).toFixed(0)} s] ${msg}`);
const loadStart = os.loadavg();

const config = parseModelConfig(GATEWAY_MODEL_CONFIG);
const serveOptions = {
  maxBatch: STREAMS,
  maxSequence: SLAB,
  kvCacheBytes: STREAMS * KvPool.slotBytes(config, SLAB),
  maxRunningPerCustomer: STREAMS,
  requestTimeoutMs: 900_000,
};
log('setup: model, database, blob store, customers, adapters');
const bench = await openGatewayBench({
  customers: 2,
  adapters: 4,
  generation: serveOptions,
  onProgress: log,
});
const { base, adapters, customers } = bench;
const threads = ['main', 'worker'] as const;
const services = Object.fromEntries(
  threads.map((t) => [t, bench.generationService({ ...serveOptions, sessionThread: t })]),
) as Record<(typeof threads)[number], GenerationService>;

const requests = (maxTokens: number): LoadRequest[] =>
  Array.from({ length: STREAMS }, (_, i) => {
    const a = i % 2 === 0 ? adapters[(i / 2) % adapters.length]! : null;
    return {
      actor: a ? a.owner.actor : customers[i % customers.length]!.actor,
      input: {
        adapter: a?.name ?? null,
        prompt: `Request ${i}: summarize ticket #${1000 + i} for the account team, please.`,
        maxTokens,
        temperature: 0,
        mode: a ? 'SIDELOAD' : undefined,
      },
    };
  });

interface Round {
  thread: string;
  round: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
  tokensPerSecond: number;
  decodeTokens: number;
  steps: number;
  wallMs: number;
  errors: number;
}

async function round(thread: (typeof threads)[number], n: number): Promise<Round> {
  const gen = services[thread];
  const c0 = await counters(gen, base.id);
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const { outcomes, wallMs } = await runConcurrent(requests(TOKENS), (r) => timedStream(gen, r));
  h.disable();
  const c = diff(await counters(gen, base.id), c0);
  const ms = (ns: number) => ns / 1e6;
  const r: Round = {
    thread,
    round: n,
    p50: ms(h.percentile(50)),
    p99: ms(h.percentile(99)),
    max: ms(h.max),
    mean: ms(h.mean),
    decodeTokens: c.decodeTokens,
    steps: c.steps,
    wallMs,
    tokensPerSecond: c.decodeTokens / (wallMs / 1000),
    errors: outcomes.filter((o) => !o.ok).length,
  };
  log(
    `${thread} round ${n}: delay p50 ${r.p50.toFixed(1)} / p99 ${r.p99.toFixed(1)} / max ${r.max.toFixed(1)} ms, ` +
      `${r.tokensPerSecond.toFixed(1)} tok/s, ${r.steps} steps, ${r.errors} errors`,
  );
  return r;
}

for (const t of threads) {
  log(`warm-up (${t}): sessions built, the batch shape run once`);
  await runConcurrent(requests(4), (r) => timedStream(services[t], r));
}
const rounds: Round[] = [];
for (let n = 1; n <= ROUNDS; n++) {
  // Alternate which goes first, so neither always runs right after the other's load.
  for (const t of n % 2 === 1 ? [...threads] : [...threads].reverse()) rounds.push(await round(t, n));
}
for (const t of threads) await services[t].close();
await bench.close();

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const of = (t: string) => rounds.filter((r) => r.thread === t);
const med = (t: string, k: keyof Round) => median(of(t).map((r) => r[k] as number));
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length}× ` +
    `${os.cpus()[0]?.model ?? 'unknown CPU'}, onnxruntime-node ${ort.env.versions.common}, default intra-op ` +
    `threads; load average ${loadStart.map((x) => x.toFixed(1)).join(' / ')} at the start, ` +
    `${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' / ')} at the end. ${STREAMS} concurrent streams (half on ${adapters.length} side-loaded ` +
    `adapters, half on the base model), ${TOKENS} tokens each, ${SLAB}-token KV slabs; rounds alternate.`,
  '',
  '| sessions on | round | event-loop delay p50 ms | p99 ms | max ms | mean ms | decode tokens/s | steps | errors |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rounds.map(
    (r) =>
      `| ${r.thread} thread | ${r.round} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${f(r.mean)} | ` +
      `${f(r.tokensPerSecond)} | ${r.steps} | ${r.errors} |`,
  ),
  '',
  `Medians, main → worker: p99 ${f(med('main', 'p99'))} → ${f(med('worker', 'p99'))} ms ` +
    `(${f(med('main', 'p99') / med('worker', 'p99'), 0)}× lower), max ${f(med('main', 'max'))} → ` +
    `${f(med('worker', 'max'))} ms, throughput ${f(med('main', 'tokensPerSecond'))} → ` +
    `${f(med('worker', 'tokensPerSecond'))} tokens/s ` +
    `(${f((100 * med('worker', 'tokensPerSecond')) / med('main', 'tokensPerSecond'), 0)}%).`,
];
console.log(lines.join('\n'));
emitResult({ bench: 'event-loop', streams: STREAMS, tokens: TOKENS, rounds });
