/**
 * BullMQ behaviour across processes on the real Redis: a cancel published by the API side aborts the
 * handler in a worker process, and a worker killed with SIGKILL mid-job has its job picked up by another
 * worker once the lock lapses (the pattern of issue 5's kill-and-resume test). The worker process is
 * test/queue/fixtures/queue-worker.ts run with `node --import tsx`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BullMqJobQueue } from '../../src/queue/bullmq-queue.js';
import { deleteKeys, REDIS_URL, uniquePrefix, waitFor } from './helpers.js';

const prefix = uniquePrefix('xproc');
const fixture = fileURLToPath(new URL('./fixtures/queue-worker.ts', import.meta.url));
const LOCK_MS = 2000;

type ChildEvent = { event: string; id?: string; attempt?: number; reason?: string; at: number };

/** Starts the worker process; `events` fills with its JSON lines, stamped with the time they arrived. */
function startChild(queueName: string): { child: ChildProcess; events: ChildEvent[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, REDIS_URL, QUEUE_NAME: queueName, QUEUE_PREFIX: prefix, LOCK_MS: String(LOCK_MS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events: ChildEvent[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    events.push({ ...(JSON.parse(line) as Omit<ChildEvent, 'at'>), at: Date.now() });
  });
  children.push(child);
  return { child, events };
}

const children: ChildProcess[] = [];
const queues: BullMqJobQueue<{ n: number }>[] = [];
const openQueue = (queueName: string, extra: { stalledIntervalMs?: number } = {}) => {
  const q = new BullMqJobQueue<{ n: number }>({
    redisUrl: REDIS_URL,
    queueName,
    prefix,
    lockDurationMs: LOCK_MS,
    ...extra,
  });
  queues.push(q);
  return q;
};

describe('BullMqJobQueue across processes', () => {
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all(queues.splice(0).map((q) => q.close()));
  });
  afterAll(() => deleteKeys(prefix));

  it('cancel from the API process aborts the running handler in the worker process within a few hundred ms', async () => {
    const queueName = `q${randomBytes(3).toString('hex')}`;
    const api = openQueue(queueName);
    const { events } = startChild(queueName);
    await api.enqueue('job_xcancel', { n: 1 });
    await waitFor('child started the job', () => events.some((e) => e.event === 'started'), 15_000);
    expect(await api.getState('job_xcancel')).toBe('active');

    const t0 = Date.now();
    await api.cancel('job_xcancel');
    await waitFor('child aborted', () => events.some((e) => e.event === 'aborted'), 3000);
    const abortedEvent = events.find((e) => e.event === 'aborted')!;
    expect(abortedEvent.at - t0).toBeLessThan(500);
    expect(abortedEvent).toMatchObject({ id: 'job_xcancel', reason: 'JobCancelledError' });
    await waitFor('failed', async () => (await api.getState('job_xcancel')) === 'failed');
    expect(events.filter((e) => e.event === 'started')).toHaveLength(1);
  });

  it('a worker killed with SIGKILL mid-job: another worker picks the job up after the lock lapses', async () => {
    const queueName = `q${randomBytes(3).toString('hex')}`;
    const api = openQueue(queueName);
    const { child, events } = startChild(queueName);
    await waitFor('child ready', () => events.some((e) => e.event === 'ready'), 15_000);
    await api.enqueue('job_kill', { n: 42 });
    await waitFor('child started the job', () => events.some((e) => e.event === 'started'), 5000);
    expect(events.find((e) => e.event === 'started')).toMatchObject({ id: 'job_kill', attempt: 1 });

    child.kill('SIGKILL');
    const killedAt = Date.now();
    await new Promise((resolve) => child.once('exit', resolve));

    const survivor = openQueue(queueName, { stalledIntervalMs: 500 });
    const runs: { attempt: number; payload: { n: number }; at: number }[] = [];
    await survivor.startWorker(
      async (job) => void runs.push({ attempt: job.attempt, payload: job.payload, at: Date.now() }),
    );
    await waitFor(
      'job completed by the survivor',
      async () => (await api.getState('job_kill')) === 'completed',
      15_000,
    );
    expect(runs.map(({ attempt, payload }) => ({ attempt, payload }))).toEqual([
      { attempt: 2, payload: { n: 42 } },
    ]);
    // Taken over only once the dead worker's lock lapsed (it is renewed every LOCK_MS/2, so about half of
    // it was left at the kill; a quarter as the bound leaves room for a late renewal on a loaded machine).
    expect(runs[0]!.at - killedAt).toBeGreaterThanOrEqual(LOCK_MS / 4);
  });
});
