/**
 * The in-process JobQueue against the shared contract (job-queue-contract.ts), plus what only it has:
 * bounded memory of finished jobs and re-filling from SQL after a restart through `reconcileJobs`.
 * The Redis implementation runs the same contract in bullmq-queue.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { InProcessJobQueue } from '../../src/queue/in-process-queue.js';
import { reconcileJobs } from '../../src/queue/job-queue.js';
import { jobQueueContract, type Payload } from './job-queue-contract.js';
import { waitFor } from './helpers.js';

describe('InProcessJobQueue', () => {
  jobQueueContract((opts) => new InProcessJobQueue<Payload>(opts));

  it('forgets the oldest finished jobs past keepFinished, so their ids can be enqueued again', async () => {
    const q = new InProcessJobQueue<Payload>({ keepFinished: 2 });
    await q.startWorker(async () => undefined);
    for (const id of ['job_1', 'job_2', 'job_3']) {
      await q.enqueue(id, {});
      await waitFor(id, async () => (await q.getState(id)) === 'completed');
    }
    expect([await q.getState('job_1'), await q.getState('job_2'), await q.getState('job_3')]).toEqual([
      'unknown',
      'completed',
      'completed',
    ]);
    expect(await q.enqueue('job_1', {})).toEqual({ created: true });
    await q.close();
  });

  it('after a restart, reconcileJobs re-enqueues the jobs SQL still has as QUEUED/RUNNING', async () => {
    const before = new InProcessJobQueue<Payload>();
    await before.enqueue('job_q', { n: 1 });
    await before.close(); // the process died: memory is gone
    const after = new InProcessJobQueue<Payload>();
    const ran: string[] = [];
    await after.enqueue('job_r', { n: 2 });
    const result = await reconcileJobs(after, [
      { jobId: 'job_q', payload: { n: 1 } },
      { jobId: 'job_r', payload: { n: 2 } },
    ]);
    expect(result).toEqual({ created: ['job_q'], existing: ['job_r'] });
    await after.startWorker(async (job) => void ran.push(job.id));
    await waitFor('both ran', () => ran.length === 2);
    expect(ran.sort()).toEqual(['job_q', 'job_r']);
    await after.close();
  });

  it('refuses ids BullMQ would refuse, and bad attempts, with BAD_USER_INPUT', async () => {
    const q = new InProcessJobQueue<Payload>();
    await expect(q.enqueue('a:b', {})).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(q.enqueue('123', {})).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(q.enqueue('job_x', {}, { attempts: 0 })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await q.close();
  });
});
