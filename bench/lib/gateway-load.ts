/**
 * Client-side load for bench/gateway.ts: concurrent `generate` / `generateStream` calls through the
 * GenerationService with their latency, time to first chunk and completion tokens; the scheduler's counters
 * around a phase (steps, decode and prefill tokens) so ms per step and rows per step can be read off; an RSS
 * sampler; percentiles. Benchmarks only: nothing here asserts a time.
 */
import type { SchedulerStats } from '../../src/gateway/scheduler.js';
import type { Actor } from '../../src/services/actor.js';
import type { GenerateInput, GenerationService } from '../../src/services/generation.js';

export interface LoadRequest {
  actor: Actor;
  input: GenerateInput;
}

export interface RequestOutcome {
  ok: boolean;
  /** From the call to its result (generate) or to the stream's last chunk. */
  ms: number;
  /** generateStream only: from the call to the first chunk (text delta or the final chunk). */
  ttftMs: number | null;
  /**
   * generateStream only: whether that first chunk carried text. False when nothing could be shown before the
   * end (a byte-level model's bytes are held back until they form UTF-8, then flushed with the final chunk).
   */
  firstChunkText: boolean | null;
  /** generate only (a stream's chunks carry no usage): completion tokens of the result. */
  completionTokens: number | null;
  error: string | null;
}

/** Nearest-rank percentile (p in [0, 100]). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (xs: readonly number[]): number => percentile(xs, 50);

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  return `${code ?? 'uncoded'}: ${err instanceof Error ? err.message : String(err)}`;
}

export async function timedGenerate(gen: GenerationService, r: LoadRequest): Promise<RequestOutcome> {
  const t0 = performance.now();
  const none = { ttftMs: null, firstChunkText: null };
  try {
    const g = await gen.generate(r.actor, r.input);
    const ms = performance.now() - t0;
    return { ok: true, ms, ...none, completionTokens: g.usage.completionTokens, error: null };
  } catch (err) {
    return { ok: false, ms: performance.now() - t0, ...none, completionTokens: null, error: describe(err) };
  }
}

export async function timedStream(gen: GenerationService, r: LoadRequest): Promise<RequestOutcome> {
  const t0 = performance.now();
  let ttftMs: number | null = null;
  let firstChunkText: boolean | null = null;
  try {
    const chunks = await gen.generateStream(r.actor, r.input);
    for await (const chunk of chunks) {
      if (ttftMs !== null) continue;
      ttftMs = performance.now() - t0;
      firstChunkText = chunk.finishReason === null;
    }
    const ms = performance.now() - t0;
    return { ok: true, ms, ttftMs, firstChunkText, completionTokens: null, error: null };
  } catch (err) {
    const ms = performance.now() - t0;
    return { ok: false, ms, ttftMs, firstChunkText, completionTokens: null, error: describe(err) };
  }
}

/** All requests at once; resolves with every outcome (in request order) and the wall time. */
export async function runConcurrent(
  requests: readonly LoadRequest[],
  call: (r: LoadRequest) => Promise<RequestOutcome>,
): Promise<{ outcomes: RequestOutcome[]; wallMs: number }> {
  const t0 = performance.now();
  const outcomes = await Promise.all(requests.map(call));
  return { outcomes, wallMs: performance.now() - t0 };
}

/** The scheduler counters of one base model, for differences around a phase. */
export type Counters = Pick<SchedulerStats, 'steps' | 'decodeTokens' | 'prefillTokens' | 'switches'>;

export async function counters(gen: GenerationService, baseModelId: string): Promise<Counters> {
  const s = (await gen.gateway.stats()).models[baseModelId];
  return {
    steps: s?.steps ?? 0,
    decodeTokens: s?.decodeTokens ?? 0,
    prefillTokens: s?.prefillTokens ?? 0,
    switches: s?.switches ?? 0,
  };
}

export function diff(after: Counters, before: Counters): Counters {
  return {
    steps: after.steps - before.steps,
    decodeTokens: after.decodeTokens - before.decodeTokens,
    prefillTokens: after.prefillTokens - before.prefillTokens,
    switches: after.switches - before.switches,
  };
}

/** Samples `process.memoryUsage().rss` every `everyMs` until stopped; returns the peak (MiB). */
export function sampleRss(everyMs = 100): { stop(): number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss) / 2 ** 20;
    },
  };
}

export const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;
