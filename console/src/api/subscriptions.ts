/**
 * GraphQL subscriptions over one graphql-ws WebSocket per signed-in key. A lost connection is retried for ever
 * (capped backoff) and graphql-ws re-sends every active subscription once it is back; `onReconnected` lets a
 * page refetch what it missed in between (the training chart reloads the job's loss history).
 */
import { createClient, type Client } from 'graphql-ws';
import { toApiError, type ApiError } from './graphql';

function isCloseEvent(e: unknown): e is { code: number } {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number';
}

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting';

let client: Client | null = null;
let state: ConnectionState = 'idle';
/** The socket was lost (not closed by the lazy client for want of subscriptions) and is being re-opened. */
let lost = false;
/** Subscriptions running now: a socket lost with none is not re-opened until the next one starts. */
let active = 0;
const stateListeners = new Set<(s: ConnectionState) => void>();
const reconnectListeners = new Set<() => void>();

function setState(next: ConnectionState): void {
  state = next;
  for (const l of stateListeners) l(next);
}

export function connectionState(): ConnectionState {
  return state;
}

export function onConnectionState(listener: (s: ConnectionState) => void): () => void {
  stateListeners.add(listener);
  return () => stateListeners.delete(listener);
}

/** Called each time the socket comes back after having been lost. */
export function onReconnected(listener: () => void): () => void {
  reconnectListeners.add(listener);
  return () => reconnectListeners.delete(listener);
}

/** Opens (lazily) the socket for `key`; null closes it. */
export function openSubscriptions(key: string | null): void {
  void client?.dispose();
  client = null;
  lost = false;
  setState('idle');
  if (key === null) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  client = createClient({
    url,
    lazy: true,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: Number.POSITIVE_INFINITY,
    // A refused key (4401/4403) is final; anything else (server restart, network) is retried.
    shouldRetry: (e) => !(isCloseEvent(e) && (e.code === 4401 || e.code === 4403)),
    retryWait: async (retries) => {
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(retries, 5))));
    },
    on: {
      connecting: () => setState(lost ? 'reconnecting' : 'connecting'),
      connected: () => {
        const again = lost;
        lost = false;
        setState('connected');
        if (again) for (const l of reconnectListeners) l();
      },
      // 1000: the lazy client closed an idle socket (no subscription left) — nothing was lost.
      closed: (event) => {
        lost = active > 0 && !(isCloseEvent(event) && event.code === 1000);
        setState(lost ? 'reconnecting' : 'idle');
      },
    },
  });
}

export interface SubscriptionHandlers<T> {
  next(data: T): void;
  error?(err: ApiError | Error): void;
  complete?(): void;
}

/** Starts a subscription; the returned function stops it. */
export function subscribe<T>(
  query: string,
  variables: Record<string, unknown>,
  handlers: SubscriptionHandlers<T>,
): () => void {
  if (client === null) throw new Error('not signed in');
  active++;
  let ended = false;
  const end = () => {
    if (!ended) active--;
    ended = true;
  };
  const stop = client.subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors?.length) handlers.error?.(toApiError(result.errors as never));
        else if (result.data) handlers.next(result.data as T);
      },
      error: (err) => {
        end();
        if (Array.isArray(err)) handlers.error?.(toApiError(err as never));
        else handlers.error?.(err instanceof Error ? err : new Error('the subscription failed'));
      },
      complete: () => {
        end();
        handlers.complete?.();
      },
    },
  );
  return () => {
    end();
    stop();
  };
}
