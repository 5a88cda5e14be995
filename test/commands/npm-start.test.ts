/**
 * `npm start` as a user runs it: npm → `exec node bin/deltagate.js serve` (the compiled dist/, rebuilt first
 * when a source file is newer than its output). One SIGTERM or SIGINT to npm's pid — or a terminal's Ctrl-C,
 * which reaches npm and the server both — must run the graceful shutdown exactly once, exit 0 and leave no
 * process listening. NODE_ENV is deliberately unset, as in production, so Apollo's defaults are the real ones.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** src/**\/*.ts files whose dist/**\/*.js is missing or older: `npm start` would run stale code. */
function staleSources(dir = join(ROOT, 'src')): string[] {
  const stale: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) stale.push(...staleSources(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const out = join(ROOT, 'dist', relative(join(ROOT, 'src'), path).replace(/\.ts$/, '.js'));
      if (!existsSync(out) || statSync(out).mtimeMs < statSync(path).mtimeMs) stale.push(path);
    }
  }
  return stale;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Whether any process of the process group `pgid` is still alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'dg-npm-start-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  beforeAll(() => {
    if (staleSources().length === 0) return;
    const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    expect(build.status, `npm run build failed:\n${build.stdout}${build.stderr}`).toBe(0);
  }, 180_000);

  const cases = [
    { name: 'one SIGTERM to npm', signal: 'SIGTERM', group: false },
    { name: 'one SIGINT to npm', signal: 'SIGINT', group: false },
    { name: "Ctrl-C (SIGINT to npm's process group)", signal: 'SIGINT', group: true },
  ] as const;

  it.each(cases)('$name: shuts down once, exits 0, stops listening', async ({ signal, group }) => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (key !== 'NODE_ENV' && !key.startsWith('DELTAGATE_')) env[key] = value;
    }
    Object.assign(env, {
      DELTAGATE_PORT: String(port),
      DELTAGATE_HOST: '127.0.0.1',
      DELTAGATE_DATA_DIR: dataDir,
      DELTAGATE_LOG_LEVEL: 'info',
    });
    // Its own process group: the Ctrl-C case signals the group, and cleanup can never miss a child.
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pgid = npm.pid!;
    let output = '';
    npm.stdout.on('data', (d: Buffer) => (output += d.toString()));
    npm.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      npm.once('exit', (code, sig) => resolve({ code, signal: sig })),
    );
    try {
      const deadline = Date.now() + 20_000;
      while (!output.includes('deltagate API ready') && Date.now() < deadline && npm.exitCode === null) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(output, output).toContain(`deltagate API ready at http://127.0.0.1:${port}/graphql`);
      expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ ok: true });

      process.kill(group ? -pgid : pgid, signal);
      const result = await Promise.race([
        exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000)),
      ]);
      expect(result, output).toEqual({ code: 0, signal: null });
      expect(output.match(/"msg":"shutting down"/g), output).toHaveLength(1);
      expect(output).not.toContain('second signal');
      expect(groupAlive(pgid), 'a process of npm start outlived npm').toBe(false);
      expect(await accepts(port)).toBe(false);
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  });
});
