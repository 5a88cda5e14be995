/**
 * Pub/sub of per-job progress events (worker → API → `trainingJobProgress` subscription): a Redis
 * implementation for separate processes (JSON on channel `deltagate:progress:{jobId}`, one shared subscriber
 * connection) and an in-memory one for the embedded default. Fire-and-forget: nothing is stored, so the
 * current state for late subscribers comes from SQL through `subscribeIterator`'s `initial`. Event shapes are
 * the caller's (src/services); job execution lives in job-queue.ts.
 */
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { settlesWithin } from './job-queue.js';

export interface ProgressBus<E> {
  publish(jobId: string, event: E): Promise<void>;
  /** Resolves once the subscription is live (events published after that are delivered, in order);
   * the returned function unsubscribes. */
  subscribe(jobId: string, listener: (event: E) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export const PROGRESS_CHANNEL_PREFIX = 'deltagate:progress:';

/** Same-process bus. Delivery is asynchronous and events go through JSON, as they would through Redis. */
export class InMemoryProgressBus<E> implements ProgressBus<E> {
  private readonly listeners = new Map<string, Set<(event: E) => void>>();
  private closed = false;

  constructor(private readonly logger?: Logger) {}

  async publish(jobId: string, event: E): Promise<void> {
    if (this.closed) throw new Error('progress bus is closed');
    const json = JSON.stringify(event);
    const targets = [...(this.listeners.get(jobId) ?? [])];
    queueMicrotask(() => {
      for (const listener of targets) deliver(listener, JSON.parse(json) as E, this.logger);
    });
  }

  async subscribe(jobId: string, listener: (event: E) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('progress bus is closed');
    // A wrapper per call so the same function subscribed twice is two subscriptions, as in Redis.
    const entry = (event: E) => listener(event);
    let set = this.listeners.get(jobId);
    if (set === undefined) this.listeners.set(jobId, (set = new Set()));
    set.add(entry);
    return async () => {
      set.delete(entry);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  /** Live subscriptions for a job (tests check that iterators clean up). */
  subscriberCount(jobId: string): number {
    return this.listeners.get(jobId)?.size ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
  }
}

export interface RedisProgressBusOptions {
  redisUrl: string;
  /** Default `deltagate:progress:`; tests use their own so parallel files never cross. */
  channelPrefix?: string;
  logger?: Logger;
  /** How long the first publish waits for the first connection. Default 1000 ms. */
  connectWaitMs?: number;
}

/**
 * Redis bus. Connections are opened lazily: an API process only ever subscribes, a worker only publishes.
 * Publishing fails fast while Redis is down (events are fire-and-forget); subscriptions wait out an outage
 * and resubscribe on reconnect.
 * SUBSCRIBE/UNSUBSCRIBE for one channel are serialized so a quick unsubscribe-then-subscribe cannot leave
 * the channel unsubscribed while it has listeners.
 */
export class RedisProgressBus<E> implements ProgressBus<E> {
  private publisher: Redis | undefined;
  /** The publisher's last connection error while it is down. */
  private publisherDown: Error | undefined;
  private subscriber: Redis | undefined;
  private readonly listeners = new Map<string, Set<(event: E) => void>>();
  private readonly channelOps = new Map<string, Promise<void>>();
  private readonly prefix: string;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: RedisProgressBusOptions) {
    this.prefix = opts.channelPrefix ?? PROGRESS_CHANNEL_PREFIX;
    this.log = opts.logger ?? pino({ level: 'silent' });
  }

  channelOf(jobId: string): string {
    return `${this.prefix}${jobId}`;
  }

  /**
   * Fails fast while Redis is down (no offline queue: a worker's training loop must never wait on pub/sub;
   * SQL keeps the state). The first call waits for the first connect attempt, at most `connectWaitMs`.
   */
  async publish(jobId: string, event: E): Promise<void> {
    if (this.closed) throw new Error('progress bus is closed');
    const publisher = this.connectPublisher();
    if (publisher.status !== 'ready') await this.publisherReady(publisher);
    await publisher.publish(this.channelOf(jobId), JSON.stringify(event));
  }

  private connectPublisher(): Redis {
    if (this.publisher !== undefined) return this.publisher;
    const pub = new Redis(this.opts.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    pub.on('error', (err) => {
      if (this.publisherDown === undefined) this.log.warn({ err }, 'progress publisher: redis error');
      this.publisherDown = err;
    });
    pub.on('ready', () => {
      if (this.publisherDown !== undefined) this.log.info('progress publisher: redis is reachable again');
      this.publisherDown = undefined;
    });
    this.publisher = pub;
    return pub;
  }

  private publisherReady(pub: Redis): Promise<void> {
    const status = pub.status;
    if (status === 'reconnecting' || status === 'close' || status === 'end') {
      return Promise.reject(
        new Error(`progress bus: Redis is unreachable (${this.publisherDown?.message ?? status})`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        pub.off('ready', onReady);
        pub.off('error', onError);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onReady = () => done();
      const onError = (err: Error) => done(new Error(`progress bus: Redis is unreachable (${err.message})`));
      const timer = setTimeout(
        () => done(new Error('progress bus: Redis did not answer in time')),
        this.opts.connectWaitMs ?? 1000,
      );
      pub.on('ready', onReady);
      pub.on('error', onError);
    });
  }

  async subscribe(jobId: string, listener: (event: E) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('progress bus is closed');
    const channel = this.channelOf(jobId);
    const entry = (event: E) => listener(event);
    let set = this.listeners.get(channel);
    if (set === undefined) this.listeners.set(channel, (set = new Set()));
    set.add(entry);
    try {
      await this.syncChannel(channel);
    } catch (err) {
      set.delete(entry);
      throw err;
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      set.delete(entry);
      if (set.size === 0 && this.listeners.get(channel) === set) this.listeners.delete(channel);
      if (!this.closed) await this.syncChannel(channel);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    // Bounded: with Redis down a pending SUBSCRIBE would wait for a reconnect.
    await settlesWithin(Promise.allSettled(this.channelOps.values()), 1000);
    // QUIT flushes pending publishes; bounded, because with Redis down it would wait for a reconnect.
    for (const conn of [this.publisher, this.subscriber]) {
      if (conn !== undefined && !(await settlesWithin(conn.quit(), 1000))) conn.disconnect();
    }
  }

  private connectSubscriber(): Redis {
    if (this.subscriber !== undefined) return this.subscriber;
    const sub = new Redis(this.opts.redisUrl, { maxRetriesPerRequest: null });
    sub.on('error', (err) => this.log.warn({ err }, 'progress subscriber: redis error'));
    sub.on('message', (channel: string, message: string) => {
      const set = this.listeners.get(channel);
      if (set === undefined) return;
      let event: E;
      try {
        event = JSON.parse(message) as E;
      } catch (err) {
        this.log.warn({ err, channel }, 'progress bus: dropped a message that is not JSON');
        return;
      }
      for (const listener of [...set]) deliver(listener, event, this.log);
    });
    this.subscriber = sub;
    return sub;
  }

  /** Brings the Redis subscription of `channel` in line with whether it has listeners, one op at a time. */
  private syncChannel(channel: string): Promise<void> {
    const previous = this.channelOps.get(channel) ?? Promise.resolve();
    const op = previous
      .catch(() => undefined)
      .then(async () => {
        const sub = this.connectSubscriber();
        const wanted = (this.listeners.get(channel)?.size ?? 0) > 0;
        if (wanted) await sub.subscribe(channel);
        else await sub.unsubscribe(channel);
      });
    this.channelOps.set(channel, op);
    const forget = () => {
      if (this.channelOps.get(channel) === op) this.channelOps.delete(channel);
    };
    op.then(forget, forget);
    return op;
  }
}

function deliver<E>(listener: (event: E) => void, event: E, logger: Logger | undefined): void {
  try {
    listener(event);
  } catch (err) {
    // One broken subscriber must not starve the others of events.
    logger?.warn({ err }, 'progress listener threw');
  }
}

export interface SubscribeIteratorOptions<E> {
  /** The current state for late subscribers, yielded before live events. A function is called after the
   * subscription is live, so nothing published between reading the state and subscribing is lost (an
   * event may then arrive twice: once in the state, once live — events should be snapshots). */
  initial?: E[] | (() => E[] | Promise<E[]>);
  /** The stream completes right after yielding an event for which this is true (initial ones included). */
  isTerminal(event: E): boolean;
  /** Live events buffered for a slow consumer; past it the oldest are dropped. Default 1000. */
  maxBuffered?: number;
  /**
   * A fallback for a bus that cannot deliver (Redis down): the initial state is yielded after at most
   * `subscribeWaitMs` (default 200) even while subscribing still waits for Redis, and `read` (the record,
   * e.g. SQL) is polled every `intervalMs` while the subscription is not live or no live event came for
   * that long. A polled event is yielded when `accept(polled, lastYielded)` says so (default: when its JSON
   * differs from the last yielded event's).
   */
  poll?: {
    intervalMs: number;
    read(): E[] | Promise<E[]>;
    accept?(polled: E, last: E | undefined): boolean;
    subscribeWaitMs?: number;
  };
}

/**
 * Adapts a bus subscription to the AsyncIterator a graphql-ws subscription resolver returns: initial state
 * first, then live events in order, done after a terminal event. `return()` (client disconnect) and
 * completion both unsubscribe. The subscription starts on the first `next()`.
 */
export function subscribeIterator<E>(
  bus: ProgressBus<E>,
  jobId: string,
  opts: SubscribeIteratorOptions<NoInfer<E>>,
): AsyncIterableIterator<E> & { return(): Promise<IteratorResult<E>> } {
  const maxBuffered = opts.maxBuffered ?? 1000;
  const buffer: E[] = [];
  let wake: (() => void) | undefined;
  let started: Promise<void> | undefined;
  let unsubscribe: (() => Promise<void>) | undefined;
  let finished = false;
  let live = false;
  let lastLiveAt = 0;
  /** The newest event handed to the buffer (what a polled event is compared with). */
  let last: E | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let polling = false;

  const push = (event: E) => {
    buffer.push(event);
    last = event;
    if (buffer.length > maxBuffered) buffer.shift();
    wake?.();
  };

  const finish = async (): Promise<void> => {
    finished = true;
    clearInterval(pollTimer);
    buffer.length = 0;
    wake?.();
    const unsub = unsubscribe;
    unsubscribe = undefined;
    await unsub?.();
  };

  const listener = (event: E) => {
    if (finished) return;
    lastLiveAt = Date.now();
    push(event);
  };

  const readInitial = async () => {
    const initial = typeof opts.initial === 'function' ? await opts.initial() : (opts.initial ?? []);
    buffer.unshift(...initial);
    if (buffer.length > 0) last = buffer.at(-1);
    if (initial.length > 0) wake?.();
  };

  const start = async (): Promise<void> => {
    const poll = opts.poll;
    if (poll === undefined) {
      const unsub = await bus.subscribe(jobId, listener);
      if (finished) return void (await unsub()); // return() came while subscribing
      unsubscribe = unsub;
      live = true;
      await readInitial();
      return;
    }
    // With a fallback: subscribing may wait (Redis down); the record answers meanwhile.
    const subscribing = bus.subscribe(jobId, listener).then(
      async (unsub) => {
        if (finished) return void (await unsub());
        unsubscribe = unsub;
        live = true;
        lastLiveAt = Date.now();
      },
      () => undefined, // the bus failed: polling carries the stream
    );
    let waitTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      subscribing,
      new Promise<void>((resolve) => (waitTimer = setTimeout(resolve, poll.subscribeWaitMs ?? 200))),
    ]);
    clearTimeout(waitTimer);
    if (finished) return;
    await readInitial();
    const accept =
      poll.accept ?? ((polled: E, prev: E | undefined) => JSON.stringify(polled) !== JSON.stringify(prev));
    pollTimer = setInterval(() => {
      if (finished || polling) return;
      if (live && Date.now() - lastLiveAt < poll.intervalMs) return;
      polling = true;
      void (async () => {
        try {
          for (const event of await poll.read()) {
            if (!finished && accept(event, last)) push(event);
          }
        } catch {
          // The record is unreachable too: try again next interval.
        } finally {
          polling = false;
        }
      })();
    }, poll.intervalMs);
    pollTimer.unref();
  };

  const iterator = {
    async next(): Promise<IteratorResult<E>> {
      if (!finished) {
        started ??= start();
        try {
          await started;
        } catch (err) {
          await finish();
          throw err;
        }
      }
      while (!finished && buffer.length === 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      if (finished) return { value: undefined, done: true };
      const value = buffer.shift()!;
      if (opts.isTerminal(value)) await finish();
      return { value, done: false };
    },
    async return(): Promise<IteratorResult<E>> {
      await started?.catch(() => undefined);
      await finish();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
