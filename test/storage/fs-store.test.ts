/**
 * What only the directory store does (the shared behaviour is blob-store.contract.test.ts): temp files a
 * killed process left in `.tmp` are removed when the store opens, once they are stale (older than
 * STALE_TMP_MS); a fresh one may belong to another process writing right now and stays.
 */
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore, STALE_TMP_MS } from '../../src/storage/fs-store.js';

describe('FsBlobStore.open', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dg-fs-store-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('removes stale temp files left by a killed process, keeps fresh ones', async () => {
    const first = await FsBlobStore.open({ dir, publicUrl: 'http://127.0.0.1:9' });
    await first.put('a/b', new Uint8Array([1, 2, 3]));
    const tmp = join(dir, '.tmp');
    // What a process killed mid-write leaves behind: its temp file, never renamed or removed.
    const old = new Date(Date.now() - STALE_TMP_MS - 60_000);
    await writeFile(join(tmp, 'killed-mid-write'), Buffer.alloc(1024));
    await utimes(join(tmp, 'killed-mid-write'), old, old);
    await writeFile(join(tmp, 'being-written-now'), Buffer.alloc(10));

    const second = await FsBlobStore.open({ dir, publicUrl: 'http://127.0.0.1:9' });
    expect((await readdir(tmp)).sort()).toEqual(['being-written-now']);
    // The objects themselves are untouched.
    expect([...(await second.get('a/b'))]).toEqual([1, 2, 3]);
  });
});
