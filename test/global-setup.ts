/**
 * Vitest global setup: starts the S3-protocol server the suite tests against and tells test files where it is
 * (vitest `provide('s3', …)` AND `DELTAGATE_TEST_S3_*` env vars). Order: an external server when
 * `DELTAGATE_TEST_S3_ENDPOINT` is set (MinIO), else `python3 -m moto.server` on a free port, else `s3rver` from
 * node_modules if installed. With none, `s3` is null and S3 tests fail with a message saying what to install.
 * PostgreSQL and Redis (DELTAGATE_TEST_DATABASE_URL / DELTAGATE_TEST_REDIS_URL, default localhost) must
 * answer: a local one that does not is started as .ci/run does, else the run stops with one line saying which
 * suites need it and how to point them elsewhere (test/helpers/services.ts; DELTAGATE_TEST_SERVICES=skip
 * skips the check).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { TestProject } from 'vitest/node';
import { ensureServices, postgresService, redisService } from './helpers/services.js';

export interface TestS3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** moto | s3rver | external */
  kind: 'moto' | 's3rver' | 'external';
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: TestS3Server | null;
    s3Problem: string;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntilAnswers(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`S3 server exited early with code ${child.exitCode}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      return;
    } catch (e) {
      lastError = (e as Error).message;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`S3 server at ${url} did not answer within ${timeoutMs} ms (${lastError})`);
}

// moto exits by itself when its parent (this vitest process) dies, so a killed run leaves no server behind.
const MOTO_LAUNCHER = `
import os, sys, threading, time
parent = os.getppid()
def watch():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
`;

function hasMoto(): boolean {
  return (
    spawnSync('python3', ['-c', 'import moto.server, flask, werkzeug'], { stdio: 'ignore' }).status === 0
  );
}

async function startMoto(): Promise<{ server: TestS3Server; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('python3', ['-c', MOTO_LAUNCHER, '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswers(`${endpoint}/`, child, 30_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${stderr}`);
  }
  return {
    server: {
      endpoint,
      region: 'us-east-1',
      accessKeyId: 'testing',
      secretAccessKey: 'testing',
      kind: 'moto',
    },
    child,
  };
}

async function startS3rver(): Promise<{ server: TestS3Server; close: () => Promise<void> } | null> {
  let mod: {
    default: new (o: Record<string, unknown>) => { run(): Promise<unknown>; close(): Promise<void> };
  };
  try {
    // Optional fallback, only when someone installed it; not a dependency of the project.
    mod = (await import(/* @vite-ignore */ 's3rver' as string)) as typeof mod;
  } catch {
    return null;
  }
  const port = await freePort();
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'dg-s3rver-'));
  const s = new mod.default({ port, address: '127.0.0.1', silent: true, directory: dir });
  await s.run();
  return {
    server: {
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      kind: 's3rver',
    },
    close: () => s.close(),
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.DELTAGATE_TEST_SERVICES !== 'skip') {
    const problem = await ensureServices([postgresService(), redisService()]);
    if (problem !== null) {
      // Exit rather than throw: vitest would add "No test files found" and a stack to the one line.
      console.error(`\n${problem}\n`);
      process.exit(1);
    }
  }
  let server: TestS3Server | null = null;
  let problem = '';
  let teardown = async (): Promise<void> => {};
  const external = process.env.DELTAGATE_TEST_S3_ENDPOINT;
  if (external) {
    server = {
      endpoint: external.replace(/\/+$/, ''),
      region: process.env.DELTAGATE_TEST_S3_REGION || 'us-east-1',
      accessKeyId: process.env.DELTAGATE_TEST_S3_ACCESS_KEY_ID || 'minioadmin',
      secretAccessKey: process.env.DELTAGATE_TEST_S3_SECRET_ACCESS_KEY || 'minioadmin',
      kind: 'external',
    };
  } else if (hasMoto()) {
    const { server: s, child } = await startMoto();
    server = s;
    teardown = async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    };
  } else {
    const s3rver = await startS3rver();
    if (s3rver) {
      console.warn('[global-setup] python moto not found: using s3rver from node_modules instead');
      server = s3rver.server;
      teardown = s3rver.close;
    } else {
      problem =
        'no S3-protocol server for the tests: install python moto (`pip install "moto[server]"`) or set ' +
        'DELTAGATE_TEST_S3_ENDPOINT (+ _ACCESS_KEY_ID/_SECRET_ACCESS_KEY/_REGION) to a MinIO server';
      console.warn(`[global-setup] ${problem}`);
    }
  }
  if (server) {
    // Env vars for anything outside vitest's inject (child processes the tests spawn).
    process.env.DELTAGATE_TEST_S3_ENDPOINT = server.endpoint;
    process.env.DELTAGATE_TEST_S3_REGION = server.region;
    process.env.DELTAGATE_TEST_S3_ACCESS_KEY_ID = server.accessKeyId;
    process.env.DELTAGATE_TEST_S3_SECRET_ACCESS_KEY = server.secretAccessKey;
    process.env.DELTAGATE_TEST_S3_KIND = server.kind;
  }
  project.provide('s3', server);
  project.provide('s3Problem', problem);
  return teardown;
}
