// The derived-job handler (src/training/derive-handler.ts) below GraphQL, on a base model big enough for the
// arithmetic to take a while (8 layers, width 512, MLP 1536: 25M parameters): the API's event loop keeps
// answering during an export (measured against the same work on the main thread); cancel stops a running
// export at once (the worker thread is terminated) and leaves no artifact and no scratch files; a job delivered
// twice registers one version; bad input the service did not see fails the job without retry; a stored source
// that changed is refused. The real SQLite, blob directory, in-process queue and bus.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import type { ModelConfig } from '../../src/engine/formats/hf-config.js';
import { writeCheckpoint } from '../../src/engine/formats/checkpoint.js';
import { serializePeftAdapter } from '../../src/engine/formats/peft.js';
import { InMemoryProgressBus, InProcessJobQueue } from '../../src/queue/index.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { ADMIN, type Actor, type Services } from '../../src/services/index.js';
import type {
  TrainingJobPayload,
  TrainingProgressEvent,
  TrainingRunner,
} from '../../src/services/training-runner.js';
import { ADAPTER_FILES, exportPrefix } from '../../src/storage/keys.js';
import { runComputeTask } from '../../src/training/derive-compute.js';
import { createDerivedJobHandler } from '../../src/training/derive-handler.js';
import { type TestDatabase } from '../db/test-databases.js';
import { waitFor } from '../e2e/fixtures/facts.js';
import { openBuiltinServices } from '../helpers/builtin-services.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

const logger = pino({ level: 'silent' });
const BIG = {
  hidden_size: 512,
  intermediate_size: 1536,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 259,
  max_position_embeddings: 512,
  bos_token_id: 1,
  eos_token_id: 2,
};

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return 'no error';
}

/** The event loop's worst delay and how many 10 ms ticks ran while `work` ran. */
async function loopDuring<T>(work: () => Promise<T>): Promise<{ result: T; maxDelayMs: number; ms: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const t0 = performance.now();
  const result = await work();
  const ms = performance.now() - t0;
  h.disable();
  return { result, maxDelayMs: h.max / 1e6, ms };
}

describe('derived jobs on a 25M-parameter model', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let queue: InProcessJobQueue<TrainingJobPayload>;
  let bus: InMemoryProgressBus<TrainingProgressEvent>;
  let runner: TrainingRunner;
  let alice: Actor;
  let bigDir: string;
  let bigConfig: ModelConfig;
  let models: string;
  let scratch: string;
  const ids = { big: '', bigV1: '', tiny: '', tinyV1: '' };
  const measured: Record<string, number> = {};

  beforeAll(async () => {
    models = mkdtempSync(join(tmpdir(), 'dg-derive-models-'));
    const builtinDir = await ensureBuiltinModel(models);
    bigDir = join(models, 'big-model');
    const ckpt = randomCheckpoint(BIG, 5);
    bigConfig = ckpt.config;
    await writeCheckpoint(bigDir, ckpt.rawConfig, ckpt.tensors);
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      await copyFile(join(builtinDir, f), join(bigDir, f));
    const baseModels = await BaseModelRegistry.load([
      { id: BUILTIN_MODEL_ID, dir: builtinDir },
      { id: 'big', dir: bigDir },
    ]);
    scratch = join(models, 'scratch');
    await mkdir(scratch);
    queue = new InProcessJobQueue({ backoffMs: 50 });
    bus = new InMemoryProgressBus();
    const fixture = await openBuiltinServices('derive', logger, {
      baseModels,
      training: { queue, bus, scratchDir: scratch },
    });
    ({ t, dir, s } = fixture);
    runner = s.training!;
    await runner.startWorker(1);
    const a = await s.customers.create(ADMIN, { name: 'alice', maxConcurrentJobs: 4 });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
    ids.big = (await s.adapters.create(alice, { name: 'big', baseModelId: 'big' })).id;
    const adapter = serializePeftAdapter({ ...randomAdapter(bigConfig, 8, 2), baseModelName: 'big' });
    ids.bigV1 = (
      await s.adapters.importVersion(alice, {
        adapterId: ids.big,
        adapterConfig: adapter.adapterConfig,
        weightsBase64: Buffer.from(adapter.weights).toString('base64'),
      })
    ).id;
    ids.tiny = (await s.adapters.create(alice, { name: 'tiny', baseModelId: BUILTIN_MODEL_ID })).id;
    const small = serializePeftAdapter({
      ...randomAdapter(s.baseModels.get(BUILTIN_MODEL_ID)!.modelConfig, 8, 3, ['q_proj', 'v_proj']),
      baseModelName: BUILTIN_MODEL_ID,
    });
    ids.tinyV1 = (
      await s.adapters.importVersion(alice, {
        adapterId: ids.tiny,
        adapterConfig: small.adapterConfig,
        weightsBase64: Buffer.from(small.weights).toString('base64'),
      })
    ).id;
  }, 120_000);
  afterAll(async () => {
    await runner?.close({ timeoutMs: 1000 });
    await queue?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(models, { recursive: true, force: true });
    console.log(`derive-handler measurements (ms): ${JSON.stringify(measured)}`);
  });

  const finished = (id: string, timeoutMs = 120_000) =>
    waitFor(
      `job ${id} to finish`,
      async () => {
        const j = await s.trainingJobs.get(alice, id);
        return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.status) ? j : null;
      },
      timeoutMs,
      20,
    );

  it('an export keeps the event loop answering; the same work on the main thread would not', async () => {
    const {
      result: done,
      maxDelayMs,
      ms,
    } = await loopDuring(async () => {
      const job = await s.derivedJobs.export(alice, {
        versionId: ids.bigV1,
        format: 'GGUF',
        quantize: 'Q4_0',
      });
      return finished(job.id);
    });
    expect(done).toMatchObject({ status: 'SUCCEEDED', kind: 'EXPORT' });
    measured.exportQ4Job = ms;
    measured.exportQ4JobMaxLoopDelay = maxDelayMs;
    expect(done.artifact!.sizeBytes).toBeGreaterThan(25e6 * 0.5); // ~4.5 bits a weight
    expect(done.progress).toMatchObject({ step: 75, totalSteps: 75 }); // 1 merge + 74 tensors

    // The reference: the same computation on this thread.
    const version = await s.adapters.getVersion(alice, ids.bigV1);
    const [config, weights] = await Promise.all([
      s.blobs.get(version.blobPrefix + ADAPTER_FILES.config),
      s.blobs.get(version.blobPrefix + ADAPTER_FILES.weights),
    ]);
    const inline = await loopDuring(() =>
      runComputeTask(
        {
          kind: 'export',
          modelDir: bigDir,
          adapter: { label: 'big@v1', config: JSON.parse(Buffer.from(config).toString()), weights },
          format: 'GGUF',
          quantize: 'Q4_0',
          out: join(scratch, 'inline.gguf'),
        },
        () => undefined,
      ),
    );
    measured.exportQ4MainThread = inline.ms;
    measured.exportQ4MainThreadMaxLoopDelay = inline.maxDelayMs;
    expect(inline.maxDelayMs).toBeGreaterThan(500);
    // A shared 2-core machine adds its own jitter; the blocking run above stalls for seconds.
    expect(maxDelayMs).toBeLessThan(Math.min(250, inline.maxDelayMs / 4));
  }, 180_000);

  it('cancel stops a running export within moments: CANCELLED, no artifact, no scratch files', async () => {
    const job = await s.derivedJobs.export(alice, { versionId: ids.bigV1, format: 'HF' });
    const events: TrainingProgressEvent[] = [];
    const stream = (async () => {
      for await (const e of await runner.progress(alice, job.id)) events.push(e);
    })();
    await waitFor('the merge to finish', async () => events.some((e) => e.step >= 1), 60_000, 10);
    const at = performance.now();
    expect((await runner.cancel(alice, job.id)).status).toBe('CANCELLED');
    await stream;
    await waitFor('the handler to stop', async () => (await queue.getState(job.id)) !== 'active', 10_000, 10);
    measured.cancelToHandlerStopped = performance.now() - at;
    expect(measured.cancelToHandlerStopped).toBeLessThan(2000);
    expect(events.at(-1)!.status).toBe('CANCELLED');
    const after = await s.trainingJobs.get(alice, job.id);
    expect(after).toMatchObject({ status: 'CANCELLED', artifact: null });
    expect(after.progress!.step).toBeLessThan(after.progress!.totalSteps);
    expect(await s.blobs.list(exportPrefix(after.customerId, job.id))).toEqual([]);
    await waitFor('scratch cleaned', async () => !readdirSync(scratch).some((f) => f.includes(job.id)), 5000);
  }, 120_000);

  it('SHRINK and MERGE SVD on the big model: timings, progress per module', async () => {
    const shrink = await s.derivedJobs.derive(alice, {
      adapterId: ids.big,
      operation: 'SHRINK',
      sources: [{ versionId: ids.bigV1 }],
      rank: 4,
    });
    const { result: done, maxDelayMs } = await loopDuring(() => finished(shrink.id));
    expect(done).toMatchObject({ status: 'SUCCEEDED', progress: { step: 56, totalSteps: 56 } });
    measured.shrinkBigJob = Date.parse(done.finishedAt!) - Date.parse(done.startedAt!);
    measured.shrinkBigMaxLoopDelay = maxDelayMs;
    const v = await s.adapters.getVersion(alice, done.resultVersionId!);
    expect(v).toMatchObject({ version: 2, rank: 4, derivation: { operation: 'SHRINK', rank: 4 } });
    measured.shrinkBigCompute = 1000 * (v.derivation!.report.durationSeconds as number);

    const merge = await s.derivedJobs.derive(alice, {
      adapterId: ids.big,
      operation: 'MERGE',
      method: 'SVD',
      rank: 8,
      sources: [{ versionId: ids.bigV1 }, { versionId: v.id, weight: -0.5 }],
    });
    const merged = await finished(merge.id);
    expect(merged.status).toBe('SUCCEEDED');
    measured.mergeSvdBigJob = Date.parse(merged.finishedAt!) - Date.parse(merged.startedAt!);
  }, 120_000);

  it('a job delivered twice registers one version', async () => {
    const job = await s.derivedJobs.derive(alice, {
      adapterId: ids.tiny,
      operation: 'SHRINK',
      sources: [{ versionId: ids.tinyV1 }],
      energy: 0.9,
    });
    const done = await finished(job.id);
    expect(done.status).toBe('SUCCEEDED');
    const handler = createDerivedJobHandler({
      repos: s.repos,
      blobs: s.blobs,
      bus,
      logger,
      modelDirOf: (id) => s.baseModels.get(id)?.dir ?? null,
      scratchDir: scratch,
    });
    const signal = new AbortController().signal;
    await handler({ id: job.id, payload: { jobId: job.id }, attempt: 2, finalAttempt: false, signal });
    // A run that really overlaps (its status still RUNNING, e.g. a lost lock) keeps the first version.
    await s.repos.trainingJobs.update(job.id, ['SUCCEEDED'], { status: 'RUNNING', resultVersionId: null });
    await handler({ id: job.id, payload: { jobId: job.id }, attempt: 3, finalAttempt: false, signal });
    const again = await s.trainingJobs.get(alice, job.id);
    expect({ status: again.status, resultVersionId: again.resultVersionId }).toEqual({
      status: 'SUCCEEDED',
      resultVersionId: done.resultVersionId,
    });
    const versions = await s.adapters.versionsOf(alice, [ids.tiny]);
    expect(versions.map((v) => v.version)).toEqual([1, 2]);
    expect(await s.adapters.parentsOf(alice, [done.resultVersionId!])).toHaveLength(1);
  });

  it('bad input the service never saw fails at once, without retry; a changed source file is refused', async () => {
    const customerId = (alice as { customerId: string }).customerId;
    const insert = (spec: Record<string, unknown>) =>
      s.repos.trainingJobs.insert({
        customerId,
        adapterId: ids.tiny,
        datasetId: null,
        validationDatasetId: null,
        hyperparameters: {},
        idempotencyKey: null,
        kind: 'SHRINK',
        spec,
      });
    // Past the service's checks (as an older API version might have queued it): the engine refuses.
    const bad = await insert({
      operation: 'SHRINK',
      sources: [{ versionId: ids.tinyV1, weight: 1 }],
      method: null,
      rank: 8,
      energy: null,
    });
    await queue.enqueue(bad.id, { jobId: bad.id }, { attempts: 3 });
    const failed = await finished(bad.id);
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(failed.error).toBe("rank 8 is not below the adapter's rank 8: nothing to shrink");
    expect(await queue.getState(bad.id)).toBe('failed');

    // A stored file that no longer hashes to its record: FAILED at once, never used.
    const version = await s.adapters.getVersion(alice, ids.tinyV1);
    const key = version.blobPrefix + ADAPTER_FILES.weights;
    const original = await s.blobs.get(key);
    const flipped = Uint8Array.from(original);
    flipped[flipped.length - 1]! ^= 1;
    await s.blobs.put(key, flipped);
    try {
      const job = await s.derivedJobs.derive(alice, {
        adapterId: ids.tiny,
        operation: 'SHRINK',
        sources: [{ versionId: ids.tinyV1 }],
        rank: 2,
      });
      const refused = await finished(job.id);
      expect(refused).toMatchObject({ status: 'FAILED', attempts: 1 });
      expect(refused.error).toBe(
        'tiny@v1: adapter_model.safetensors failed its SHA-256 check; refusing to use it',
      );
    } finally {
      await s.blobs.put(key, original);
    }
    expect(await codeOf(s.derivedJobs.export(ADMIN, { versionId: ids.tinyV1, format: 'GGUF' }))).toBe(
      'FORBIDDEN',
    );
    expect(existsSync(scratch)).toBe(true);
  });
});
