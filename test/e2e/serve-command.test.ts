// `deltagate serve` as a separate process, as `npm start` runs it: it serves /graphql with the configured
// admin key and port, and SIGTERM shuts it down gracefully with exit code 0; a port in use stops it with one
// line naming the port and DELTAGATE_PORT.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = fileURLToPath(new URL('./serve-entry.ts', import.meta.url));

describe('deltagate serve', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'dg-serve-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('serves /graphql and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const adminKey = 'serve-test-admin-key-0123456789';
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DELTAGATE_DATA_DIR: dataDir,
        DELTAGATE_PORT: String(port),
        DELTAGATE_HOST: '127.0.0.1',
        DELTAGATE_ADMIN_KEY: adminKey,
        DELTAGATE_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 45_000;
      while (!output.includes('ready at') && Date.now() < deadline && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(output).toContain(`ready at http://127.0.0.1:${port}/graphql`);
      const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
        body: JSON.stringify({ query: '{ viewer { role } baseModels { id } }' }),
      });
      expect(await res.json()).toEqual({
        data: { viewer: { role: 'ADMIN' }, baseModels: [{ id: 'deltagate-tiny' }] },
      });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('a port in use: one line naming the port and DELTAGATE_PORT, exit 1, no stack trace', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve'], {
        cwd: ROOT,
        env: {
          ...process.env,
          DELTAGATE_DATA_DIR: dataDir,
          DELTAGATE_PORT: String(port),
          DELTAGATE_HOST: '127.0.0.1',
          DELTAGATE_ADMIN_KEY: 'serve-test-admin-key-0123456789',
          DELTAGATE_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect({ code, lines: output.trim().split('\n') }).toEqual({
        code: 1,
        lines: [
          `deltagate serve: port ${port} on 127.0.0.1 is in use: stop what holds it or set DELTAGATE_PORT to a free port`,
        ],
      });
    } finally {
      holder.close();
    }
  });
});
