/**
 * The behaviour every JobQueue must show, run against both implementations (in-process-queue.test.ts,
 * bullmq-queue.test.ts): idempotent enqueue, retry with exponential backoff, attempts, no retry for bad input,
 * cancel (running and waiting), concurrency, close with a timeout. Cross-process behaviour (cancel from
 * another connection, SIGKILLed worker) is BullMQ-only and lives in bullmq-cross-process.test.ts.
 */
import { afterEach, expect, it } from 'vitest';
import {
  JobCancelledError,
  type JobContext,
  type JobQueue,
  type JobState,
  reconcileJobs,
  UnrecoverableJobError,
  WorkerShutdownError,
} from '../../src/queue/job-queue.js';
import { BadInputError } from '../../src/shared/errors.js';
import { aborted, deferred, sleep, waitFor } from './helpers.js';

export interface Payload {
  n?: number;
  kind?: string;
}

export type MakeQueue = (opts: { backoffMs?: number; defaultAttempts?: number }) => JobQueue<Payload>;

export function jobQueueContract(makeQueue: MakeQueue): void {
  const opened: JobQueue<Payload>[] = [];
  const open = (opts: Parameters<MakeQueue>[0] = {}) => {
    const queue = makeQueue(opts);
    opened.push(queue);
    return queue;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((q) => q.close()));
  });
  const waitState = (q: JobQueue<Payload>, id: string, state: JobState, timeoutMs = 5000) =>
    waitFor(`${id} ${state}`, async () => (await q.getState(id)) === state, timeoutMs);

  it('enqueue is idempotent by job id, sequentially and concurrently; each job runs once', async () => {
    const q = open();
    expect(await q.enqueue('job_a', { n: 1 })).toEqual({ created: true });
    expect(await q.enqueue('job_a', { n: 2 })).toEqual({ created: false });
    const results = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((n) => q.enqueue('job_b', { n })));
    const winners = results.flatMap((r, n) => (r.created ? [n] : []));
    expect(winners).toHaveLength(1);
    expect(await q.getState('job_a')).toBe('waiting');

    const calls: { id: string; payload: Payload }[] = [];
    await q.startWorker(async (job) => void calls.push({ id: job.id, payload: job.payload }));
    await waitState(q, 'job_a', 'completed');
    await waitState(q, 'job_b', 'completed');
    await sleep(100);
    calls.sort((x, y) => x.id.localeCompare(y.id));
    expect(calls).toEqual([
      { id: 'job_a', payload: { n: 1 } },
      { id: 'job_b', payload: { n: winners[0] } },
    ]);
    // Kept after finishing, so a reconciler re-enqueueing it creates nothing.
    expect(await reconcileJobs(q, [{ jobId: 'job_a', payload: {} }])).toEqual({
      created: [],
      existing: ['job_a'],
    });
    expect(await q.getState('job_unknown')).toBe('unknown');
  });

  it('retries a transient error with exponential backoff, then succeeds', async () => {
    const q = open({ backoffMs: 150 });
    const times: number[] = [];
    const attempts: number[] = [];
    await q.startWorker(async (job) => {
      times.push(Date.now());
      attempts.push(job.attempt);
      if (attempts.length < 3) throw new Error('transient');
    });
    await q.enqueue('job_retry', { n: 0 });
    await waitState(q, 'job_retry', 'completed');
    expect(attempts).toEqual([1, 2, 3]);
    const gaps = [times[1]! - times[0]!, times[2]! - times[1]!];
    // base · 2^(failures−1): at least 150 ms, then at least 300 ms (a fixed backoff would give 150 twice).
    // Only lower bounds: a loaded CI machine may add delay, never remove it. 10 ms slack for timer rounding.
    expect(gaps[0], `gaps ${gaps}`).toBeGreaterThanOrEqual(140);
    expect(gaps[1], `gaps ${gaps}`).toBeGreaterThanOrEqual(290);
  });

  it('fails once the configured attempts are used up', async () => {
    const q = open({ backoffMs: 20 });
    const seen: { attempt: number; finalAttempt: boolean }[] = [];
    await q.startWorker(async ({ attempt, finalAttempt }) => {
      seen.push({ attempt, finalAttempt });
      throw new Error('always');
    });
    await q.enqueue('job_exhaust', {}, { attempts: 3 });
    await waitState(q, 'job_exhaust', 'failed');
    await sleep(200);
    expect(seen).toEqual([
      { attempt: 1, finalAttempt: false },
      { attempt: 2, finalAttempt: false },
      { attempt: 3, finalAttempt: true },
    ]);
  });

  it('does not retry bad input (UnrecoverableJobError, BadInputError, or an error only named so)', async () => {
    const q = open({ backoffMs: 20 });
    const calls: Record<string, number> = {};
    await q.startWorker(async (job) => {
      calls[job.id] = (calls[job.id] ?? 0) + 1;
      if (job.payload.kind === 'unrecoverable') throw new UnrecoverableJobError('bad dataset');
      if (job.payload.kind === 'bad-input') throw new BadInputError('line 3: not JSON');
      const err = new Error('from another module copy');
      err.name = 'UnrecoverableError';
      throw err;
    });
    for (const kind of ['unrecoverable', 'bad-input', 'named']) await q.enqueue(`job_${kind}`, { kind });
    for (const kind of ['unrecoverable', 'bad-input', 'named']) await waitState(q, `job_${kind}`, 'failed');
    await sleep(200);
    expect(calls).toEqual({ job_unrecoverable: 1, 'job_bad-input': 1, job_named: 1 });
  });

  it('cancel aborts the signal of a running job within a few hundred ms; it then fails without retry', async () => {
    const q = open({ backoffMs: 20 });
    const started = deferred();
    let calls = 0;
    let abortedAt = 0;
    let reason: unknown;
    await q.startWorker(async (job) => {
      calls += 1;
      started.resolve();
      reason = await aborted(job.signal);
      abortedAt = Date.now();
      throw reason;
    });
    await q.enqueue('job_cancel', {});
    await started.promise;
    expect(await q.getState('job_cancel')).toBe('active');
    const t0 = Date.now();
    await q.cancel('job_cancel');
    await waitFor('abort', () => abortedAt > 0, 2000);
    expect(abortedAt - t0).toBeLessThan(500);
    expect(reason).toBeInstanceOf(JobCancelledError);
    await waitState(q, 'job_cancel', 'failed');
    await sleep(200);
    expect(calls).toBe(1);
  });

  it('cancel removes a waiting job so it never runs; cancelling unknown ids is a no-op', async () => {
    const q = open();
    await q.enqueue('job_waiting', {});
    await q.cancel('job_waiting');
    await q.cancel('job_never_existed');
    expect(await q.getState('job_waiting')).toBe('unknown');
    const ran: string[] = [];
    await q.startWorker(async (job) => void ran.push(job.id));
    await q.enqueue('job_after', {});
    await waitState(q, 'job_after', 'completed');
    expect(ran).toEqual(['job_after']);
  });

  it('cancel removes a job that is backing off before its retry', async () => {
    const q = open({ backoffMs: 300 });
    let calls = 0;
    await q.startWorker(async () => {
      calls += 1;
      throw new Error('transient');
    });
    await q.enqueue('job_backoff', {});
    await waitFor('first attempt failed', () => calls === 1);
    await sleep(50);
    expect(await q.getState('job_backoff')).toBe('waiting');
    await q.cancel('job_backoff');
    expect(await q.getState('job_backoff')).toBe('unknown');
    await sleep(500);
    expect(calls).toBe(1);
  });

  it('runs at most `concurrency` jobs at once per worker', async () => {
    const q = open();
    let running = 0;
    let peak = 0;
    await q.startWorker(
      async () => {
        running += 1;
        peak = Math.max(peak, running);
        await sleep(150);
        running -= 1;
      },
      { concurrency: 2 },
    );
    const ids = ['job_c1', 'job_c2', 'job_c3', 'job_c4', 'job_c5'];
    for (const id of ids) await q.enqueue(id, {});
    for (const id of ids) await waitState(q, id, 'completed');
    expect(peak).toBe(2);
  });

  it('refuses a worker concurrency that is not a positive integer', async () => {
    const q = open();
    for (const concurrency of [0, -1, 1.5, Number.NaN]) {
      await expect(
        q.startWorker(async () => undefined, { concurrency }),
        String(concurrency),
      ).rejects.toThrow(new TypeError(`concurrency must be a positive integer, got ${concurrency}`));
    }
  });

  it('close past its timeout aborts running handlers and hands their jobs back to another worker', async () => {
    const q = open();
    const started = deferred<number>();
    let reason: unknown;
    const w1 = await q.startWorker(async (job: JobContext<Payload>) => {
      started.resolve(job.attempt);
      reason = await aborted(job.signal);
      throw reason;
    });
    await q.enqueue('job_handback', { n: 7 });
    expect(await started.promise).toBe(1);
    const t0 = Date.now();
    await w1.close({ timeoutMs: 100 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(reason).toBeInstanceOf(WorkerShutdownError);
    expect(await q.getState('job_handback')).toBe('waiting');

    const second: { attempt: number; payload: Payload }[] = [];
    await q.startWorker(async (job) => void second.push({ attempt: job.attempt, payload: job.payload }));
    await waitState(q, 'job_handback', 'completed');
    expect(second).toEqual([{ attempt: 2, payload: { n: 7 } }]);
  });
}
