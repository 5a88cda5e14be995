/**
 * What a model's scheduler does when its session worker dies (the policy; the mechanism — rows resumed on a
 * fresh worker by recomputing their prefix — is scheduler.ts): how many deaths a row may live through, how
 * long to wait before the next worker after consecutive deaths with no successful step between them, and
 * when to stop trying and fail every request waiting on the model. Pure bookkeeping; the clock is passed in.
 */
import { DeltagateError } from '../shared/errors.js';

export interface WorkerRestartOptions {
  /** A row whose KV cache is lost to this many worker deaths fails instead of resuming again. */
  maxWorkerDeathsPerRow: number;
  /** This many deaths in a row with no successful step between them fail every row waiting on the model. */
  maxWorkerRestarts: number;
  /** The wait before the next worker after the k-th consecutive death: backoff · 2^(k−2); none after the first. */
  workerRestartBackoffMs: number;
}

/** A row lost its KV cache to more worker deaths than it may live through. */
export class SessionWorkerDeathsError extends DeltagateError {
  constructor(deaths: number, cause: unknown) {
    super(
      'INTERNAL_SERVER_ERROR',
      `generation failed: the model's session worker died ${deaths} times while this request ran; ` +
        'it is not resumed again',
      { cause },
    );
  }
}

/** The model's session worker keeps dying before it completes a step (a broken model, no memory). */
export class SessionWorkerUnavailableError extends DeltagateError {
  constructor(deaths: number, cause: unknown) {
    super(
      'INTERNAL_SERVER_ERROR',
      `generation failed: the model's session worker died ${deaths} times in a row without completing a ` +
        `step (last: ${cause instanceof Error ? cause.message : String(cause)}); the requests waiting for it ` +
        'were failed',
      { cause },
    );
  }
}

export class WorkerRestarts {
  private streak = 0;
  private notBefore = 0;

  constructor(private readonly options: WorkerRestartOptions) {}

  /**
   * `deaths` more workers died at `now` (ms). 'give-up' when the deaths since the last successful step reach
   * the bound (the count starts over for the requests that come next); else 'resume', after `waitMs`.
   */
  died(deaths: number, now: number): 'resume' | 'give-up' {
    this.streak += deaths;
    if (this.streak >= this.options.maxWorkerRestarts) {
      this.streak = 0;
      this.notBefore = 0;
      return 'give-up';
    }
    this.notBefore = this.streak < 2 ? 0 : now + this.options.workerRestartBackoffMs * 2 ** (this.streak - 2);
    return 'resume';
  }

  /** A step ran on a worker: it can start, so earlier deaths no longer count towards giving up. */
  succeeded(): void {
    this.streak = 0;
  }

  /** Milliseconds left before another worker may be started (0: now). */
  waitMs(now: number): number {
    return Math.max(0, this.notBefore - now);
  }

  /** Whether a row whose cache has been lost `deaths` times may be resumed again. */
  mayResume(deaths: number): boolean {
    return deaths < this.options.maxWorkerDeathsPerRow;
  }
}
