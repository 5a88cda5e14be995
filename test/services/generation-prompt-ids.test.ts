// Generation on a base model without a tokenizer (a llama2.c-converted checkpoint, say): promptIds works,
// a text prompt or stop sequences are refused with BAD_USER_INPUT saying why; on a model with a tokenizer,
// promptIds equal to the prompt's encoding give the same tokens as the prompt.
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_ID, makeTinyModel } from '../../src/engine/builtin-model.js';
import { chatPromptIds, type ChatMessage } from '../../src/engine/formats/chat-template.js';
import { loadTokenizer } from '../../src/engine/formats/tokenizer.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { openTestDatabase, type TestDatabase } from '../db/test-databases.js';

const logger = pino({ level: 'silent' });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return 'no error';
}

describe('generate with promptIds', () => {
  let t: TestDatabase;
  let dir: string;
  let s: Services;
  let alice: Actor;

  beforeAll(async () => {
    t = await openTestDatabase('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'dg-ids-'));
    const withTok = join(dir, 'tiny');
    const noTok = join(dir, 'no-tok');
    await makeTinyModel(withTok);
    await makeTinyModel(noTok);
    await rm(join(noTok, 'tokenizer.json'));
    await rm(join(noTok, 'tokenizer_config.json'));
    s = createServices({
      db: t.db,
      blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
      baseModels: await BaseModelRegistry.load([
        { id: BUILTIN_MODEL_ID, dir: withTok },
        { id: 'no-tok', dir: noTok },
      ]),
      limits: { maxDatasetBytes: 1000, maxInlineDatasetBytes: 500, maxAdapterBytes: 10_000_000 },
      adminKey: 'generation-admin-key-0123456789abcdef',
      countTokens: null,
      logger,
    });
    const a = await s.customers.create(ADMIN, { name: 'alice' });
    alice = await s.apiKeys.authenticate(`Bearer ${a.secret}`);
  });
  afterAll(async () => {
    await s?.generation.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a model without a tokenizer from token ids, and says why a text prompt cannot', async () => {
    const r = await s.generation.generate(alice, {
      baseModelId: 'no-tok',
      promptIds: [1, 72, 105],
      maxTokens: 5,
    });
    expect(r.text).toBe('');
    expect(r.tokenIds.length).toBeGreaterThan(0);
    expect(r.usage.promptTokens).toBe(3);
    await expect(s.generation.generate(alice, { baseModelId: 'no-tok', prompt: 'Hi' })).rejects.toThrow(
      /no tokenizer\.json: give promptIds instead/,
    );
    const refusals = await Promise.all([
      codeOf(s.generation.generate(alice, { baseModelId: 'no-tok', promptIds: [1], stop: ['x'] })),
      codeOf(s.generation.generate(alice, { baseModelId: 'no-tok', promptIds: [1, 259] })),
      codeOf(s.generation.generate(alice, { baseModelId: 'no-tok', promptIds: [] })),
      codeOf(s.generation.generate(alice, { baseModelId: 'no-tok', promptIds: [1.5] })),
      codeOf(s.generation.generate(alice, { prompt: 'a', promptIds: [1] })),
      codeOf(s.generation.generate(alice, {})),
    ]);
    expect(refusals).toEqual(Array(6).fill('BAD_USER_INPUT'));
  });

  it('gives the same tokens for promptIds as for the prompt they encode', async () => {
    const tokenizer = (await loadTokenizer(join(dir, 'tiny')))!;
    const byText = await s.generation.generate(alice, { prompt: 'Once upon', maxTokens: 8 });
    const byIds = await s.generation.generate(alice, {
      promptIds: tokenizer.encode('Once upon'),
      maxTokens: 8,
    });
    expect(byIds.tokenIds).toEqual(byText.tokenIds);
    expect(byIds.text).toBe(byText.text);
  });

  it('renders messages with the chat template; a model without a tokenizer cannot take them', async () => {
    const tokenizer = (await loadTokenizer(join(dir, 'tiny')))!;
    const messages = [{ role: 'user', content: 'Hello there' }];
    const byMessages = await s.generation.generate(alice, { messages, maxTokens: 6 });
    const byIds = await s.generation.generate(alice, {
      promptIds: chatPromptIds(tokenizer, messages as ChatMessage[]),
      maxTokens: 6,
    });
    expect(byMessages.tokenIds).toEqual(byIds.tokenIds);
    expect(byMessages.usage.promptTokens).toBe(byIds.usage.promptTokens);
    const refusals = await Promise.all([
      codeOf(s.generation.generate(alice, { baseModelId: 'no-tok', messages })),
      codeOf(s.generation.generate(alice, { messages: [] })),
      codeOf(s.generation.generate(alice, { messages: [{ role: 'robot', content: 'x' }] })),
      codeOf(s.generation.generate(alice, { messages, prompt: 'x' })),
    ]);
    expect(refusals).toEqual(Array(4).fill('BAD_USER_INPUT'));
  });
});
