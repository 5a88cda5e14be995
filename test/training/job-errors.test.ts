/**
 * What a failed training job shows its customer: the message without the server's paths
 * (src/training/job-errors.ts), through the real job handler (src/training/job-handler.ts) on a job whose
 * base model directory is missing on the worker.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID } from '../../src/engine/builtin-model.js';
import { InMemoryProgressBus, UnrecoverableJobError } from '../../src/queue/index.js';
import { ADMIN, type Services } from '../../src/services/index.js';
import type { TrainingProgressEvent } from '../../src/services/training-runner.js';
import { publicJobError, redactPaths } from '../../src/training/job-errors.js';
import { createTrainingJobHandler } from '../../src/training/job-handler.js';
import { type TestDatabase } from '../db/test-databases.js';
import { openBuiltinServices } from '../helpers/builtin-services.js';
import { FACTS_JSONL, factsHyperparameters } from '../e2e/fixtures/facts.js';

describe('redactPaths', () => {
  it('shortens absolute paths to their last segment and leaves everything else', () => {
    expect(
      [
        "cannot read /srv/models/llama/model.safetensors: ENOENT: no such file or directory, open '/srv/models/llama/model.safetensors'",
        'model directory /nonexistent does not exist',
        '/data/x/ has no config.json (/data/x)',
        'file:///tmp/x/y.json and C:\\Users\\bob\\m.bin',
        'see https://example.com/a/b, 1/2 and and/or; rank must be 1-256 (got -3)',
      ].map(redactPaths),
    ).toEqual([
      "cannot read …/model.safetensors: ENOENT: no such file or directory, open '…/model.safetensors'",
      'model directory …/nonexistent does not exist',
      '…/x has no config.json (…/x)',
      '…/y.json and …/m.bin',
      'see https://example.com/a/b, 1/2 and and/or; rank must be 1-256 (got -3)',
    ]);
    expect(publicJobError(new Error('open /var/lib/deltagate/blobs/.tmp/abc failed'))).toBe(
      'open …/abc failed',
    );
  });
});

describe('a job that fails on the worker', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let jobId: string;
  let customerId: string;

  beforeAll(async () => {
    const fixture = await openBuiltinServices('job-errors', pino({ level: 'silent' }));
    ({ t, dir, s } = fixture);
    const c = await s.customers.create(ADMIN, { name: 'paths' });
    const actor = await s.apiKeys.authenticate(`Bearer ${c.secret}`);
    customerId = c.customer.id;
    const adapterId = (await s.adapters.create(actor, { name: 'paths', baseModelId: BUILTIN_MODEL_ID })).id;
    const datasetId = (
      await s.datasets.upload(actor, { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' })
    ).id;
    jobId = (
      await s.repos.trainingJobs.insert({
        customerId,
        adapterId,
        datasetId,
        validationDatasetId: null,
        hyperparameters: factsHyperparameters(2),
        idempotencyKey: null,
      })
    ).id;
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records and publishes its error without the server paths', async () => {
    const secret = '/srv/deltagate-secret/models/llama-3b';
    const bus = new InMemoryProgressBus<TrainingProgressEvent>();
    const events: TrainingProgressEvent[] = [];
    const unsubscribe = await bus.subscribe(jobId, (e) => void events.push(e));
    const handler = createTrainingJobHandler({
      repos: s.repos,
      blobs: s.blobs,
      bus,
      logger: pino({ level: 'silent' }),
      modelDirOf: () => secret, // this worker's copy of the model is gone
    });
    await expect(
      handler({
        id: jobId,
        payload: { jobId },
        attempt: 1,
        finalAttempt: true,
        signal: new AbortController().signal,
      }),
    ).rejects.toBeInstanceOf(UnrecoverableJobError);
    const job = await s.repos.trainingJobs.findById({ kind: 'tenant', customerId }, jobId);
    expect({ status: job?.status, error: job?.error }).toEqual({
      status: 'FAILED',
      error: 'model directory …/llama-3b does not exist',
    });
    expect(events.at(-1)?.message).toBe('model directory …/llama-3b does not exist');
    expect(JSON.stringify(events)).not.toContain('/srv');
    await unsubscribe();
  });
});
