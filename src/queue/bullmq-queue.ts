/**
 * The Redis JobQueue on BullMQ: the API process enqueues, `deltagate worker` processes run the handler.
 * Adds what BullMQ lacks for us: a `created` answer on idempotent enqueue, cancellation across processes
 * (a marker key + a pub/sub message the worker holding the job turns into an AbortSignal), producers that fail
 * fast when Redis is down, and a worker close with a timeout. It is not the source of truth (SQL is; see
 * `reconcileJobs` in job-queue.ts) and knows nothing about training. Settings explained in docs/QUEUE.md.
 */
import { Queue, UnrecoverableError, WaitingError, Worker, type Job, type KeepJobs } from 'bullmq';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import {
  ABORT_GRACE_MS,
  assertValidAttempts,
  assertValidConcurrency,
  assertValidJobId,
  type CloseOptions,
  DEFAULT_ATTEMPTS,
  DEFAULT_BACKOFF_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  type EnqueueOptions,
  isUnrecoverableError,
  JobCancelledError,
  JobLockLostError,
  type JobHandler,
  type JobQueue,
  type JobState,
  type JobWorker,
  QueueUnavailableError,
  settlesWithin,
  type WorkerConnectionState,
  type WorkerOptions,
  WorkerShutdownError,
} from './job-queue.js';

export interface BullMqQueueOptions {
  /** `redis://…`; the server must run with `maxmemory-policy noeviction`. */
  redisUrl: string;
  queueName: string;
  /** BullMQ key prefix; every key of this queue is `{prefix}:{queueName}:…`. Default 'deltagate'. */
  prefix?: string;
  /** Tries per job unless `enqueue` says otherwise. Default 3. */
  defaultAttempts?: number;
  /** Base of the exponential backoff: base · 2^(failures−1). Default 1000 ms. */
  backoffMs?: number;
  /** A worker's lease on a running job, renewed every half of it. A dead worker's job runs again about
   * this long (plus up to two stalled intervals) after it died. Must exceed the longest event-loop block of
   * a handler, or a live job is taken as stalled. Default 30 s. */
  lockDurationMs?: number;
  /** How often workers look for stalled jobs. Default: lockDurationMs / 2. */
  stalledIntervalMs?: number;
  /** Stall recoveries before a job is failed instead. Default 2 (BullMQ's own default is 1). */
  maxStalledCount?: number;
  /** Finished jobs kept (for getState and dedup). Default: 7 days and at most 1000. */
  removeOnComplete?: KeepJobs;
  /** Default: 30 days and at most 5000. */
  removeOnFail?: KeepJobs;
  /** Producer calls (enqueue, cancel, getState) fail with QueueUnavailableError past this. Default 5 s. A
   * call while the producer connection is known to be down (a connect attempt failed and it is waiting to
   * retry) fails at once instead. */
  connectTimeoutMs?: number;
  /** Default of `JobWorker.close`'s timeout. Default 30 s. */
  closeTimeoutMs?: number;
  logger?: Logger;
}

/** Atomic "is this id new?": 0 the job exists, 1 claimed by this call, -1 a concurrent enqueue holds the
 * claim. The claim expires on its own should its holder die between claim and add. */
const CLAIM_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return -1`;
const CLAIM_TTL_MS = 10_000;
const CANCEL_MARKER_TTL_MS = 24 * 3600 * 1000;
const JOB_NAME = 'job';

const STATE_MAP: Record<string, JobState> = {
  waiting: 'waiting',
  wait: 'waiting',
  delayed: 'waiting',
  prioritized: 'waiting',
  'waiting-children': 'waiting',
  active: 'active',
  completed: 'completed',
  failed: 'failed',
};

export class BullMqJobQueue<P> implements JobQueue<P> {
  readonly prefix: string;
  private readonly redis: Redis;
  private queue: Queue | undefined;
  private readyWait: Promise<void> | undefined;
  private readonly workers = new Set<BullMqWorker<P>>();
  private readonly log: Logger;
  private closed = false;
  /** The last connection error of the producer, cleared when it is ready again. */
  private lastError: Error | undefined;

  constructor(private readonly opts: BullMqQueueOptions) {
    this.prefix = opts.prefix ?? 'deltagate';
    this.log = opts.logger ?? pino({ level: 'silent' });
    assertValidAttempts(opts.defaultAttempts ?? DEFAULT_ATTEMPTS);
    // Producer connection: no offline queue, so a command while Redis is down fails instead of hanging.
    this.redis = new Redis(opts.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: this.connectTimeoutMs,
    });
    this.redis.on('error', (err) => {
      // Logged once per outage, not once per reconnect attempt.
      if (this.lastError === undefined) this.log.warn({ err }, 'queue producer: redis error');
      this.lastError = err;
    });
    this.redis.on('ready', () => {
      if (this.lastError !== undefined) this.log.info('queue producer: redis is reachable again');
      this.lastError = undefined;
    });
  }

  private get connectTimeoutMs(): number {
    return this.opts.connectTimeoutMs ?? 5_000;
  }

  /** Key names shared with the worker side. Ids never contain ':' (assertValidJobId), so none collide. */
  keyOf(kind: 'job' | 'claim' | 'cancelled' | 'cancelChannel', jobId = ''): string {
    const base = `${this.prefix}:${this.opts.queueName}`;
    if (kind === 'job') return `${base}:${jobId}`;
    if (kind === 'claim') return `${base}:dg-claim:${jobId}`;
    if (kind === 'cancelled') return `${base}:dg-cancelled:${jobId}`;
    return `${base}:dg-cancel`;
  }

  async enqueue(jobId: string, payload: P, opts?: EnqueueOptions): Promise<{ created: boolean }> {
    assertValidJobId(jobId);
    const attempts = opts?.attempts ?? this.opts.defaultAttempts ?? DEFAULT_ATTEMPTS;
    assertValidAttempts(attempts);
    return this.producerCall('enqueue', async (queue) => {
      const claimKey = this.keyOf('claim', jobId);
      const giveUpAt = Date.now() + this.connectTimeoutMs; // producerCall has answered by then: stop too
      for (;;) {
        const claim = await this.redis.eval(
          CLAIM_SCRIPT,
          2,
          this.keyOf('job', jobId),
          claimKey,
          CLAIM_TTL_MS,
        );
        if (claim === 0) return { created: false };
        if (claim === 1) break;
        if (Date.now() > giveUpAt) throw new QueueUnavailableError(`enqueue ${jobId}: claim held too long`);
        // Another enqueue of this id is between its claim and its add: wait for it, so the payload stored is
        // always the one of the call that answers `created: true`.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      try {
        // A fresh job must not inherit the cancel marker of an earlier job with this id.
        await this.redis.del(this.keyOf('cancelled', jobId));
        await queue.add(JOB_NAME, payload, {
          jobId,
          attempts,
          backoff: { type: 'exponential', delay: this.opts.backoffMs ?? DEFAULT_BACKOFF_MS },
          removeOnComplete: this.opts.removeOnComplete ?? { age: 7 * 24 * 3600, count: 1000 },
          removeOnFail: this.opts.removeOnFail ?? { age: 30 * 24 * 3600, count: 5000 },
        });
      } finally {
        await this.redis.del(claimKey);
      }
      return { created: true };
    });
  }

  async cancel(jobId: string): Promise<void> {
    assertValidJobId(jobId);
    await this.producerCall('cancel', async (queue) => {
      // Marker first, then the message: a worker that takes the job after the message went by still sees
      // the marker when it starts the job (BullMqWorker.process checks it after registering the job).
      await this.redis.set(this.keyOf('cancelled', jobId), '1', 'PX', CANCEL_MARKER_TTL_MS);
      await this.redis.publish(this.keyOf('cancelChannel'), jobId);
      const state = await queue.getJobState(jobId);
      if (STATE_MAP[state] === 'waiting') await queue.remove(jobId);
    });
  }

  async getState(jobId: string): Promise<JobState> {
    assertValidJobId(jobId);
    return this.producerCall(
      'getState',
      async (queue) => STATE_MAP[await queue.getJobState(jobId)] ?? 'unknown',
    );
  }

  async startWorker(handler: JobHandler<P>, opts?: WorkerOptions): Promise<JobWorker> {
    if (this.closed) throw new QueueUnavailableError('the queue is closed');
    const worker = new BullMqWorker<P>(
      this,
      this.opts,
      this.log,
      handler,
      opts?.concurrency ?? 1,
      opts?.onConnectionChange,
    );
    this.workers.add(worker);
    try {
      await worker.start();
    } catch (err) {
      await worker.close({ timeoutMs: 0 });
      throw err;
    }
    return worker;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.workers].map((w) => w.close()));
    if (this.queue !== undefined) await settlesWithin(this.queue.close(), 2000);
    this.redis.disconnect();
  }

  /** @internal */
  forgetWorker(worker: BullMqWorker<P>): void {
    this.workers.delete(worker);
  }

  /** Waits for the producer connection (bounded), then runs `fn` under the same bound. */
  private async producerCall<T>(what: string, fn: (queue: Queue) => Promise<T>): Promise<T> {
    if (this.closed) throw new QueueUnavailableError('the queue is closed');
    const deadline = this.connectTimeoutMs;
    const run = async (): Promise<T> => {
      await this.ready();
      this.queue ??= this.createQueue();
      return fn(this.queue);
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new QueueUnavailableError(`queue ${what}: Redis did not answer within ${deadline} ms`)),
        deadline,
      );
    });
    try {
      return await Promise.race([run(), timeout]);
    } catch (err) {
      if (err instanceof QueueUnavailableError || isBadInput(err)) throw err;
      throw new QueueUnavailableError(`queue ${what} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves when the producer connection is ready. Fails at once while it is known to be down (its last
   * connect attempt failed; ioredis retries in the background) — producers fail fast, SQL keeps the job and
   * the reconciler enqueues it later. During a connect attempt, waits for its outcome (one shared wait, so
   * calls piling up do not pile up listeners too).
   */
  private ready(): Promise<void> {
    const status = this.redis.status;
    if (status === 'ready') return Promise.resolve();
    if (status === 'reconnecting' || status === 'close' || status === 'end') {
      return Promise.reject(this.unreachable());
    }
    this.readyWait ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.redis.off('ready', onReady);
        this.redis.off('error', onError);
        this.redis.off('close', onClose);
        this.readyWait = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
      const onReady = () => done();
      const onError = (err: Error) => done(this.unreachable(err));
      const onClose = () => done(this.unreachable());
      this.redis.on('ready', onReady);
      this.redis.on('error', onError);
      this.redis.on('close', onClose);
    });
    return this.readyWait;
  }

  private unreachable(err = this.lastError): QueueUnavailableError {
    return new QueueUnavailableError(
      `Redis is unreachable${err === undefined ? '' : ` (${err.message})`}; try again later`,
      { cause: err },
    );
  }

  private createQueue(): Queue {
    const queue = new Queue(this.opts.queueName, { connection: this.redis, prefix: this.prefix });
    queue.on('error', (err) => this.log.warn({ err }, 'bullmq queue error'));
    return queue;
  }
}

function isBadInput(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'BAD_USER_INPUT';
}

/** One BullMQ Worker plus its cancel subscription; jobs it runs are tracked so a cancel can abort them. */
class BullMqWorker<P> implements JobWorker {
  /** Usually one controller per id; two when a job whose lock this worker lost comes back to it. */
  private readonly active = new Map<string, Set<AbortController>>();
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private worker: Worker | undefined;
  private closing: Promise<void> | undefined;
  private state: WorkerConnectionState = 'connecting';
  /** Which of the two connections are ready. */
  private readonly up = new Set<Redis>();

  constructor(
    private readonly owner: BullMqJobQueue<P>,
    private readonly opts: BullMqQueueOptions,
    private readonly log: Logger,
    private readonly handler: JobHandler<P>,
    private readonly concurrency: number,
    private readonly onConnectionChange?: (state: WorkerConnectionState, err?: Error) => void,
  ) {
    assertValidConcurrency(concurrency);
    // Workers wait out Redis outages instead of failing: BullMQ requires maxRetriesPerRequest null here.
    this.redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
    this.subscriber = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
    for (const [conn, what] of [
      [this.redis, 'redis'],
      [this.subscriber, 'subscriber'],
    ] as const) {
      conn.on('ready', () => {
        this.up.add(conn);
        if (this.up.size === 2) this.setState('ready');
      });
      conn.on('error', (err: Error) => {
        // Once per outage at warn; every reconnect attempt fails the same way.
        if (this.state !== 'unreachable') log.warn({ err }, `queue worker: ${what} error`);
        else log.debug({ err }, `queue worker: ${what} error`);
        this.up.delete(conn);
        this.setState('unreachable', err);
      });
      conn.on('close', () => {
        this.up.delete(conn);
        if (this.state === 'ready') this.setState('unreachable', new Error('connection to Redis closed'));
      });
    }
  }

  connectionState(): WorkerConnectionState {
    return this.state;
  }

  private setState(state: WorkerConnectionState, err?: Error): void {
    if (this.closing !== undefined || state === this.state) return;
    this.state = state;
    try {
      this.onConnectionChange?.(state, err);
    } catch (e) {
      this.log.warn({ err: e }, 'onConnectionChange threw');
    }
  }

  async start(): Promise<void> {
    const channel = this.owner.keyOf('cancelChannel');
    this.subscriber.on('message', (ch: string, jobId: string) => {
      if (ch === channel) this.abort(jobId, new JobCancelledError(jobId));
    });
    await this.subscriber.subscribe(channel);
    const lockDuration = this.opts.lockDurationMs ?? 30_000;
    this.worker = new Worker(this.opts.queueName, (job: Job, token?: string) => this.process(job, token), {
      connection: this.redis,
      prefix: this.owner.prefix,
      concurrency: this.concurrency,
      lockDuration,
      stalledInterval: this.opts.stalledIntervalMs ?? Math.max(500, Math.floor(lockDuration / 2)),
      maxStalledCount: this.opts.maxStalledCount ?? 2,
    });
    this.worker.on('error', (err) => this.log.warn({ err }, 'bullmq worker error'));
    this.worker.on('failed', (job, err) =>
      this.log.warn(
        { jobId: job?.id, err: err.message, attemptsMade: job?.attemptsMade },
        'job attempt failed',
      ),
    );
    this.worker.on('stalled', (jobId) => this.log.warn({ jobId }, 'stalled job moved back to waiting'));
    // BullMQ keeps running a handler whose lock it could not renew; stop it, the job is someone else's now.
    this.worker.on('lockRenewalFailed', (jobIds) => {
      this.log.warn({ jobIds }, 'lost job locks; aborting their handlers');
      for (const jobId of jobIds) this.abort(jobId, new JobLockLostError(jobId));
    });
    await this.worker.waitUntilReady();
  }

  private abort(jobId: string, reason: Error): void {
    for (const controller of this.active.get(jobId) ?? []) {
      if (!controller.signal.aborted) controller.abort(reason);
    }
  }

  private async process(job: Job, token: string | undefined): Promise<void> {
    const jobId = job.id!;
    const controller = new AbortController();
    let running = this.active.get(jobId);
    if (running === undefined) this.active.set(jobId, (running = new Set()));
    running.add(controller);
    try {
      if ((await this.redis.exists(this.owner.keyOf('cancelled', jobId))) === 1) {
        controller.abort(new JobCancelledError(jobId));
      }
      if (controller.signal.aborted) throw controller.signal.reason;
      await this.handler({
        id: jobId,
        payload: job.data as P,
        attempt: Math.max(1, job.attemptsStarted),
        finalAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
        signal: controller.signal,
      });
    } catch (err) {
      throw await this.translateFailure(job, token, err, controller.signal);
    } finally {
      running.delete(controller);
      if (running.size === 0 && this.active.get(jobId) === running) this.active.delete(jobId);
    }
  }

  /** Our error kinds → BullMQ's: cancelled and bad input fail at once; a shutdown hands the job back. */
  private async translateFailure(job: Job, token: string | undefined, err: unknown, signal: AbortSignal) {
    const reason: unknown = signal.aborted ? signal.reason : undefined;
    if (reason instanceof WorkerShutdownError) {
      await job.moveToWait(token);
      return new WaitingError();
    }
    if (reason instanceof JobCancelledError) return new UnrecoverableError(reason.message);
    const message = err instanceof Error ? err.message : String(err);
    if (isUnrecoverableError(err)) return new UnrecoverableError(message);
    return err instanceof Error ? err : new Error(message);
  }

  close(opts?: CloseOptions): Promise<void> {
    this.closing ??= this.shutdown(opts?.timeoutMs ?? this.opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const worker = this.worker;
    if (worker !== undefined) {
      // BullMQ's close waits for running jobs with no bound of its own: bound it, then abort the handlers
      // (they hand their jobs back), then drop the connections so a stuck handler cannot hold us.
      const closing = worker.close();
      if (!(await settlesWithin(closing, timeoutMs))) {
        this.log.warn({ running: [...this.active.keys()] }, 'worker close timed out; aborting running jobs');
        for (const jobId of this.active.keys()) this.abort(jobId, new WorkerShutdownError());
        // Bounded: with Redis down a disconnect could wait for ever.
        if (!(await settlesWithin(closing, ABORT_GRACE_MS))) await settlesWithin(worker.disconnect(), 2000);
      }
    }
    this.subscriber.disconnect();
    this.redis.disconnect();
    this.owner.forgetWorker(this);
  }
}
