/**
 * `GET /readyz`: whether this process can serve — each dependency checked with a cheap call under a short
 * timeout, all at once: SQL (a trivial query), blob storage (a HEAD of a sentinel key) and Redis (PING,
 * when configured). 200 `{ ok: true, checks }` when every one answers, else 503 naming the failing ones
 * (`failing: ["redis"]`); why it failed is logged, not sent (the endpoint takes no key, so it tells nothing
 * about the infrastructure beyond which dependency is down). `/healthz` stays liveness: it answers as long
 * as the event loop does, so an orchestrator restarts the process only when the process itself is stuck.
 */
import type { Logger } from 'pino';
import { sendJson } from './json.js';
import type { Route } from './router.js';

export interface ReadinessCheck {
  /** sql, blobs, redis: the name the answer gives. */
  name: string;
  /** Resolves when the dependency answers; rejects (or outlives the timeout) when it does not. */
  check(): Promise<void>;
}

export const READINESS_TIMEOUT_MS = 2_000;

type Outcome = 'ok' | 'failed' | 'timeout';

async function run(check: ReadinessCheck, timeoutMs: number, logger: Logger): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref();
  });
  try {
    const outcome = await Promise.race([check.check().then(() => 'ok' as const), timeout]);
    if (outcome === 'timeout')
      logger.warn({ dependency: check.name, timeoutMs }, 'readiness check timed out');
    return outcome;
  } catch (err) {
    logger.warn({ dependency: check.name, err }, 'readiness check failed');
    return 'failed';
  } finally {
    clearTimeout(timer);
  }
}

export function readinessRoute(
  checks: readonly ReadinessCheck[],
  logger: Logger,
  timeoutMs = READINESS_TIMEOUT_MS,
): Route {
  return {
    methods: ['GET'],
    pattern: '/readyz',
    handler: async (_req, res) => {
      const outcomes = await Promise.all(checks.map((c) => run(c, timeoutMs, logger)));
      const result = Object.fromEntries(checks.map((c, i) => [c.name, outcomes[i]!]));
      const failing = checks.filter((_, i) => outcomes[i] !== 'ok').map((c) => c.name);
      res.setHeader('cache-control', 'no-store');
      if (failing.length === 0) return sendJson(res, 200, { ok: true, checks: result });
      sendJson(res, 503, {
        ok: false,
        failing,
        checks: result,
        error: { code: 'UNAVAILABLE', message: `not ready: ${failing.join(', ')} unreachable` },
      });
    },
  };
}
