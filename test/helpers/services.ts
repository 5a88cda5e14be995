/**
 * PostgreSQL and Redis for the suites that use them, checked once by test/global-setup.ts: each must answer;
 * one that does not is started the way .ci/run starts it (`pg_ctlcluster … start`, `redis-server
 * --daemonize yes …`) when it is local and installed; if it still does not answer, the run stops with ONE
 * line saying which suites need what and how to point them elsewhere. `DELTAGATE_TEST_DATABASE_URL` and
 * `DELTAGATE_TEST_REDIS_URL` are the variables the helpers honour (test/helpers/env.ts,
 * test/db/test-databases.ts, test/queue/helpers.ts); `DELTAGATE_TEST_SERVICES=skip` runs without the check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';

export interface LocalService {
  name: string;
  url: string;
  /** The environment variable that points the suites at another server. */
  variable: string;
  /** Test files that use it are found by these words. */
  usedBy: RegExp;
  /** null when it answers, else why not (one short phrase). */
  probe(): Promise<string | null>;
  /** Tries to start it; false when there is nothing to try (not local, not installed). */
  start(): boolean;
}

export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const isLocal = (url: string) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);
const has = (command: string) =>
  spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const reason = (err: unknown) => (err as { code?: string }).code ?? (err as Error).message.split('\n')[0]!;

export function postgresService(
  url = process.env.DELTAGATE_TEST_DATABASE_URL || DEFAULT_POSTGRES_URL,
): LocalService {
  return {
    name: 'PostgreSQL',
    url,
    variable: 'DELTAGATE_TEST_DATABASE_URL',
    usedBy:
      /testPostgresUrl|createTestPgSchema|openTestDatabase|createTestDatabaseConfig|postgres\+s3|DB_KINDS/,
    async probe() {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return null;
      } catch (err) {
        return reason(err);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    start() {
      if (!isLocal(url) || !has('pg_ctlcluster') || !existsSync('/etc/postgresql')) return false;
      for (const version of readdirSync('/etc/postgresql')) {
        spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], {
          stdio: 'ignore',
        });
      }
      return true;
    },
  };
}

export function redisService(url = process.env.DELTAGATE_TEST_REDIS_URL || DEFAULT_REDIS_URL): LocalService {
  return {
    name: 'Redis',
    url,
    variable: 'DELTAGATE_TEST_REDIS_URL',
    usedBy: /(?<!DELTAGATE_)REDIS_URL\b|DELTAGATE_TEST_REDIS_URL|startRedisApi/,
    async probe() {
      const redis = new Redis(url, {
        lazyConnect: true,
        connectTimeout: 3000,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      redis.on('error', () => undefined);
      try {
        await redis.connect();
        return (await redis.ping()) === 'PONG' ? null : 'no PONG';
      } catch (err) {
        return reason(err);
      } finally {
        redis.disconnect();
      }
    },
    start() {
      if (!isLocal(url) || !has('redis-server')) return false;
      const port = new URL(url).port || '6379';
      const args = [
        '--daemonize',
        'yes',
        '--bind',
        '127.0.0.1',
        '--port',
        port,
        '--save',
        '',
        '--appendonly',
        'no',
      ];
      spawnSync('redis-server', args, { stdio: 'ignore' });
      return true;
    },
  };
}

/** The test directories whose files mention `usedBy` (e.g. "test/db, test/queue"). */
export function suitesUsing(usedBy: RegExp, root = join(process.cwd(), 'test')): string[] {
  const dirs = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.test.ts') && usedBy.test(readFileSync(path, 'utf8')))
        dirs.add(relative(join(root, '..'), dir));
    }
  };
  walk(root);
  return [...dirs].sort();
}

export interface EnsureOptions {
  /** How long a started service gets to answer. */
  waitMs?: number;
  /** Which suites need a service (default: scan test/). */
  suites?: (service: LocalService) => string[];
}

/**
 * Probes each service, starts the ones that do not answer (when possible) and probes again. Returns null
 * when all answer, else the one line to stop the run with.
 */
export async function ensureServices(
  services: readonly LocalService[],
  options: EnsureOptions = {},
): Promise<string | null> {
  const waitMs = options.waitMs ?? 15_000;
  const down: { service: LocalService; why: string; started: boolean }[] = [];
  for (const service of services) {
    let why = await service.probe();
    if (why === null) continue;
    const started = service.start();
    if (started) {
      const deadline = Date.now() + waitMs;
      while (why !== null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        why = await service.probe();
      }
    }
    if (why !== null) down.push({ service, why, started });
  }
  if (down.length === 0) return null;
  const suites = options.suites ?? ((s: LocalService) => suitesUsing(s.usedBy));
  const what = down
    .map(
      ({ service, why, started }) =>
        `${service.name} at ${service.url} does not answer (${why}${started ? ', also after trying to start it' : ''}; needed by ${suites(service).join(', ') || 'no suite'})`,
    )
    .join('; ');
  const variables = down.map(({ service }) => service.variable).join(' / ');
  const [it, servers] = down.length > 1 ? ['them', 'running servers'] : ['it', 'a running server'];
  return (
    `${what}. Start ${it} (as .ci/run does), point ${variables} at ${servers}, ` +
    'or set DELTAGATE_TEST_SERVICES=skip to run only suites that need neither.'
  );
}
