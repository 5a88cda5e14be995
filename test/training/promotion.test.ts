// Safe retraining: `startTraining(promote: ALWAYS | IF_BETTER | NEVER)` decides what the bare adapter name
// serves after a job succeeds. The decision rule on its own, then real jobs (SQLite, directory store,
// in-process queue, the built-in model) whose held-out eval losses differ: a worse IF_BETTER job leaves the
// bare name on the better version; ALWAYS moves it; NEVER leaves aliases alone.
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdapterVersion } from '../../src/db/repositories/adapter-versions.js';
import { BUILTIN_MODEL_ID } from '../../src/engine/builtin-model.js';
import { InMemoryProgressBus, InProcessJobQueue } from '../../src/queue/index.js';
import { ADMIN, type Actor, type Services } from '../../src/services/index.js';
import {
  TrainingRunner,
  type PromotePolicy,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from '../../src/services/training-runner.js';
import { decidePromotion } from '../../src/training/promotion.js';
import { type TestDatabase } from '../db/test-databases.js';
import { openBuiltinServices } from '../helpers/builtin-services.js';
import { waitFor } from '../e2e/fixtures/facts.js';
import { makePeftAdapter } from '../e2e/harness.js';

const logger = pino({ level: 'silent' });

const v = (version: number, evalLoss: number | null): AdapterVersion =>
  ({ id: `av_${version}`, version, metrics: evalLoss === null ? null : { evalLoss } }) as AdapterVersion;

describe('decidePromotion', () => {
  it('ALWAYS promotes, NEVER leaves aliases, IF_BETTER compares held-out eval loss', () => {
    expect(decidePromotion('ALWAYS', v(3, 9), v(1, 1), v(1, 1))).toMatchObject({ promote: true, pin: null });
    expect(decidePromotion('NEVER', v(3, 0.1), v(1, 1), v(1, 1))).toMatchObject({
      promote: false,
      pin: null,
    });
    // IF_BETTER against `production`.
    expect(decidePromotion('IF_BETTER', v(3, 0.5), v(1, 1), v(1, 1))).toMatchObject({ promote: true });
    expect(decidePromotion('IF_BETTER', v(3, 1), v(1, 1), v(1, 1))).toMatchObject({
      promote: false,
      pin: null,
    });
    expect(decidePromotion('IF_BETTER', v(3, 2), v(1, 1), v(1, 1))).toMatchObject({
      promote: false,
      pin: null,
    });
    // No version before: the first one is promoted.
    expect(decidePromotion('IF_BETTER', v(1, null), null, null)).toMatchObject({ promote: true });
    // No alias but earlier versions: compared with what the bare name served (the latest); when not
    // better, `production` is pinned to that one so the bare name keeps serving it.
    expect(decidePromotion('IF_BETTER', v(3, 2), null, v(2, 1))).toMatchObject({
      promote: false,
      pin: v(2, 1),
    });
    expect(decidePromotion('IF_BETTER', v(3, 0.5), null, v(2, 1))).toMatchObject({
      promote: true,
      pin: null,
    });
    // Nothing to compare (no eval loss on either side): not better.
    expect(decidePromotion('IF_BETTER', v(3, null), v(1, 1), v(1, 1))).toMatchObject({ promote: false });
    expect(decidePromotion('IF_BETTER', v(3, 0.1), v(1, null), v(1, null))).toMatchObject({ promote: false });
  });
});

/** 60 templated rows: from 50 rows up the trainer holds 10 % out and records an eval loss. */
const ROWS =
  Array.from({ length: 60 }, (_, i) =>
    JSON.stringify({ prompt: `Item ${i} colour?`, completion: ` ${['red', 'blue', 'green'][i % 3]}` }),
  ).join('\n') + '\n';

const good = { epochs: 6, learningRate: 1e-2, batchSize: 16, dropout: 0, warmupRatio: 0, rank: 4 };
const bad = { epochs: 1, learningRate: 1e-6, batchSize: 16, dropout: 0, warmupRatio: 0, rank: 4 };

describe('promote on real training jobs (SQLite, in-process queue)', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let queue: InProcessJobQueue<TrainingJobPayload>;
  let runner: TrainingRunner;
  let alice: Actor;
  let datasetId: string;

  beforeAll(async () => {
    const fixture = await openBuiltinServices('promote', logger);
    ({ t, dir, s } = fixture);
    queue = new InProcessJobQueue({ backoffMs: 50 });
    runner = new TrainingRunner({
      repos: s.repos,
      blobs: s.blobs,
      baseModels: s.baseModels,
      queue,
      bus: new InMemoryProgressBus<TrainingProgressEvent>(),
      logger,
      threads: 2,
    });
    await runner.startWorker(1);
    const a = await s.customers.create(ADMIN, { name: 'alice', maxConcurrentJobs: 4 });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
    datasetId = (
      await s.datasets.upload(alice, { name: 'colours', content: ROWS, format: 'PROMPT_COMPLETION' })
    ).id;
  });
  afterAll(async () => {
    await runner?.close({ timeoutMs: 1000 });
    await queue?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const train = async (
    adapterId: string,
    hyperparameters: Record<string, unknown>,
    promote?: PromotePolicy,
  ): Promise<AdapterVersion> => {
    const job = await runner.startTraining(alice, {
      adapterId,
      datasetId,
      hyperparameters,
      ...(promote ? { promote } : {}),
    });
    const done = await waitFor(
      `job ${job.id}`,
      async () => {
        const j = await s.trainingJobs.get(alice, job.id);
        return j.status === 'QUEUED' || j.status === 'RUNNING' ? null : j;
      },
      120_000,
    );
    expect(done.status).toBe('SUCCEEDED');
    return s.adapters.getVersion(alice, done.resultVersionId!);
  };
  const served = async (name: string) => (await s.adapters.resolveReference(alice, name)).version;
  const production = async (adapterId: string) =>
    (await s.adapters.aliasesOf(alice, [adapterId])).find((a) => a.alias === 'production')?.versionId ?? null;
  const loss = (x: AdapterVersion) => x.metrics!.evalLoss as number;

  it('IF_BETTER (the default) keeps the bare name on the better version; ALWAYS and NEVER do as told', async () => {
    const adapter = await s.adapters.create(alice, { name: 'colours', baseModelId: BUILTIN_MODEL_ID });
    const v1 = await train(adapter.id, good); // default policy, first version: promoted
    expect(typeof loss(v1)).toBe('number');
    expect(await production(adapter.id)).toBe(v1.id);
    expect(await served('colours')).toBe(1);

    const v2 = await train(adapter.id, bad); // worse held-out loss: not promoted
    expect(loss(v2)).toBeGreaterThan(loss(v1));
    expect(await production(adapter.id)).toBe(v1.id);
    expect(await served('colours')).toBe(1);
    expect((await s.trainingJobs.get(alice, v2.trainingJobId!)).promote).toBe('IF_BETTER');

    const v3 = await train(adapter.id, bad, 'NEVER');
    expect(v3.version).toBe(3);
    expect(await served('colours')).toBe(1);

    await train(adapter.id, bad, 'ALWAYS'); // worse, but told to
    expect(await served('colours')).toBe(4);

    await train(adapter.id, good, 'IF_BETTER'); // better than v4 (production)
    expect(await served('colours')).toBe(5);
  }, 300_000);

  it('IF_BETTER on an adapter with versions but no production alias pins what the bare name served', async () => {
    const adapter = await s.adapters.create(alice, { name: 'imported', baseModelId: BUILTIN_MODEL_ID });
    const peft = makePeftAdapter({ rank: 2 });
    const imported = await s.adapters.importVersion(alice, {
      adapterId: adapter.id,
      adapterConfig: peft.adapterConfig,
      weightsBase64: peft.weightsBase64,
    });
    expect(await served('imported')).toBe(1); // latest, no alias
    // The trained version has an eval loss, the imported one none: not provably better.
    const trained = await train(adapter.id, bad);
    expect(trained.version).toBe(2);
    expect(await production(adapter.id)).toBe(imported.id);
    expect(await served('imported')).toBe(1);
    // NEVER on an adapter without the alias changes nothing: the bare name follows the latest, as before.
    const other = await s.adapters.create(alice, { name: 'never', baseModelId: BUILTIN_MODEL_ID });
    await train(other.id, bad, 'NEVER');
    expect(await production(other.id)).toBeNull();
    expect(await served('never')).toBe(1);
  }, 300_000);
});
