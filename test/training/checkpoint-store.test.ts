// DirectoryCheckpointStore: latest wins, old ones pruned, half-written ones invisible; checkpoint (de)serialization.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deserializeCheckpoint, serializeCheckpoint } from '../../src/training/checkpoint.js';
import { DirectoryCheckpointStore } from '../../src/training/checkpoint-store.js';
import { CheckpointMismatchError } from '../../src/training/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dg-ckpt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('DirectoryCheckpointStore', () => {
  it('returns null when empty, the highest step otherwise, and keeps the newest two', async () => {
    const store = new DirectoryCheckpointStore(join(dir, 'a'));
    expect(await store.loadLatest()).toBeNull();
    for (const step of [2, 10, 4]) await store.save(step, { 'x.bin': Uint8Array.of(step) });
    // A crashed write leaves only a temporary directory, which is ignored.
    await mkdir(join(dir, 'a', '.tmp-checkpoint-99-1'));
    await writeFile(join(dir, 'a', '.tmp-checkpoint-99-1', 'x.bin'), Uint8Array.of(99));
    const latest = await store.loadLatest();
    expect(latest).toEqual({ step: 10, files: { 'x.bin': Uint8Array.of(10) } });
    expect((await readdir(join(dir, 'a'))).filter((n) => n.startsWith('checkpoint-')).sort()).toEqual([
      'checkpoint-10',
      'checkpoint-4',
    ]);
  });
});

describe('checkpoint serialization', () => {
  it('round-trips params, moments and state, and refuses another run’s checkpoint', () => {
    const params = new Map([['lora.0.q_proj.A', Float32Array.from([1, 2, 3])]]);
    const optimizer = {
      step: 7,
      m: { 'lora.0.q_proj.A': Float32Array.from([0.1, 0.2, 0.3]) },
      v: { 'lora.0.q_proj.A': Float32Array.from([1e-3, 2e-3, 3e-3]) },
    };
    const state = {
      step: 7,
      epoch: 1,
      microBatch: 2,
      seed: 5,
      fingerprint: 'fp',
      lossHistory: [{ step: 7, loss: 1.5, learningRate: 1e-4 }],
      evalHistory: [],
      tokens: 99,
    };
    const files = serializeCheckpoint({ state, params, optimizer });
    expect(deserializeCheckpoint(files, 'fp')).toEqual({ state, params, optimizer });
    expect(() => deserializeCheckpoint(files, 'other')).toThrow(CheckpointMismatchError);
  });
});
