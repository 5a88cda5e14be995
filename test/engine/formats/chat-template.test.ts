// The one chat renderer: generation's prompt ids for a conversation are exactly the tokens training
// conditions the assistant's turn on (encode-rows.ts), for the built-in template and a BOS-writing one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../../../src/engine/builtin-model.js';
import { chatPromptIds, renderChat, type ChatMessage } from '../../../src/engine/formats/chat-template.js';
import { loadTokenizer, type TextTokenizer } from '../../../src/engine/formats/tokenizer.js';
import { encodeRow } from '../../../src/training/encode-rows.js';

describe('chat template', () => {
  let dir: string;
  let tok: TextTokenizer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dg-chat-'));
    await makeTinyModel(dir);
    tok = (await loadTokenizer(dir))!;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const convo: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Capital of France?' },
  ];

  it('prompts generation with the tokens training learned the answer after', () => {
    const ids = chatPromptIds(tok, convo);
    const trained = encodeRow(
      tok,
      { messages: [...convo, { role: 'assistant', content: ' Paris' }] },
      'CHAT',
    );
    const firstLearned = trained.mask.indexOf(1);
    expect(Array.from(trained.ids.slice(0, firstLearned))).toEqual(ids);
    expect(renderChat(tok, convo, true).endsWith('assistant\n')).toBe(true);
  });

  it('never doubles a BOS the template writes itself', () => {
    const llama2ish = {
      ...tok,
      chatTemplate: "{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}",
    };
    const ids = chatPromptIds(llama2ish, convo);
    expect(ids[0]).toBe(tok.bosTokenId);
    expect(ids[1]).not.toBe(tok.bosTokenId);
  });
});
