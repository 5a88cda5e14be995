/**
 * src/backends.ts: what every process opens at start-up. A DELTAGATE_BASE_MODELS entry that is not a model
 * directory stops the start with one line naming the variable and the path (not a bare ENOENT).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackends } from '../src/backends.js';
import { ConfigError, loadConfig } from '../src/config.js';

describe('openBackends', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dg-backends-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  async function refusal(baseModels: string): Promise<unknown> {
    const config = loadConfig({ DELTAGATE_DATA_DIR: join(dir, 'data'), DELTAGATE_BASE_MODELS: baseModels });
    try {
      const b = await openBackends(config);
      await b.db.destroy();
    } catch (err) {
      return err;
    }
    return 'opened';
  }

  it('names DELTAGATE_BASE_MODELS and the path when an entry does not exist', async () => {
    const err = await refusal(join(dir, 'nonexistent'));
    expect(err).toBeInstanceOf(ConfigError);
    expect([(err as ConfigError).variable, (err as ConfigError).message]).toEqual([
      'DELTAGATE_BASE_MODELS',
      `DELTAGATE_BASE_MODELS entry ${join(dir, 'nonexistent')} does not exist`,
    ]);
  });

  it('says when an entry is a directory without config.json, or with a bad one', async () => {
    await mkdir(join(dir, 'empty'));
    expect(((await refusal(join(dir, 'empty'))) as Error).message).toBe(
      `DELTAGATE_BASE_MODELS entry ${join(dir, 'empty')} has no config.json (not a Hugging Face model directory)`,
    );
    await mkdir(join(dir, 'bad'));
    await writeFile(join(dir, 'bad', 'config.json'), '{"model_type": "llama"');
    const bad = (await refusal(join(dir, 'bad'))) as ConfigError;
    expect(bad.variable).toBe('DELTAGATE_BASE_MODELS');
    expect(bad.message).toMatch(new RegExp(`^DELTAGATE_BASE_MODELS entry ${join(dir, 'bad')}: `));
  });
});
