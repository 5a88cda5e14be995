// The session-worker restart policy as a table: deaths in a row back off and give up at the bound, a step
// that ran starts the count over, and a row may live through one death fewer than the per-row bound.
import { describe, expect, it } from 'vitest';
import { WorkerRestarts } from '../../src/gateway/worker-restarts.js';

const options = { maxWorkerDeathsPerRow: 2, maxWorkerRestarts: 4, workerRestartBackoffMs: 100 };

describe('WorkerRestarts', () => {
  it('restarts at once after a death, backs off doubling after more in a row, and gives up at the bound', () => {
    const r = new WorkerRestarts(options);
    const seen = [1, 1, 1, 1, 1].map((n) => {
      const verdict = r.died(n, 1000);
      return { verdict, waitMs: r.waitMs(1000) };
    });
    expect(seen).toEqual([
      { verdict: 'resume', waitMs: 0 },
      { verdict: 'resume', waitMs: 100 },
      { verdict: 'resume', waitMs: 200 },
      { verdict: 'give-up', waitMs: 0 },
      // The count starts over for the requests that come next.
      { verdict: 'resume', waitMs: 0 },
    ]);
    expect(r.waitMs(2000)).toBe(0);
  });

  it('a step that ran starts the count over; several deaths at once count each', () => {
    const r = new WorkerRestarts(options);
    expect([r.died(1, 0), r.died(1, 0)]).toEqual(['resume', 'resume']);
    r.succeeded();
    expect([r.died(3, 0), r.waitMs(0), r.died(1, 0)]).toEqual(['resume', 200, 'give-up']);
  });

  it('a row resumes until it has lost its cache to maxWorkerDeathsPerRow deaths', () => {
    const r = new WorkerRestarts(options);
    expect([0, 1, 2, 3].map((d) => r.mayResume(d))).toEqual([true, true, false, false]);
  });
});
