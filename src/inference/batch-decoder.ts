/**
 * Runs a batch of sequences through a decode-graph session step by step: one prefill (the left-padded
 * prompts as one T-token step over an empty cache) and then one token per row per step, each row with its own
 * positions and (side-loaded) adapter slot. Returns raw last-position logits; sampling and stopping are the
 * generator's (generator.ts). The cache is kv-cache.ts; the graph is src/engine/nn/llama.ts.
 */
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { HostTensor } from '../engine/ir/types.js';
import type { EngineSession } from '../engine/onnx/session.js';
import { invariant } from '../shared/invariant.js';
import { KvCache } from './kv-cache.js';
import { int64 } from './model.js';

export interface DecoderRow {
  promptIds: readonly number[];
  /** Side-load slot (0 = base); ignored by sessions without side-loading. */
  slot?: number;
}

export class BatchDecoder {
  readonly cache: KvCache;
  /** Next position id of each row (its real-token count so far). */
  private readonly positions: number[];
  private readonly outputNames: string[];
  private prefilled = false;

  constructor(
    private readonly session: EngineSession,
    private readonly config: ModelConfig,
    private readonly rows: readonly DecoderRow[],
    capacity: number,
    /** Side-load stacks (`lora.*` feeds) when the session takes them. */
    private readonly loraFeeds: Record<string, HostTensor> = {},
  ) {
    invariant(rows.length > 0, 'BatchDecoder needs at least one row');
    this.cache = new KvCache(config.numLayers, rows.length, config.numKvHeads, capacity, config.headDim);
    this.positions = rows.map(() => 0);
    this.outputNames = ['logits'];
    for (let l = 0; l < config.numLayers; l++)
      this.outputNames.push(`present.${l}.key`, `present.${l}.value`);
  }

  get batch(): number {
    return this.rows.length;
  }

  private async run(
    ids: number[],
    mask: Uint8Array,
    positions: number[],
    t: number,
  ): Promise<Float32Array[]> {
    const B = this.rows.length;
    const feeds: Record<string, HostTensor> = {
      input_ids: int64([B, t], ids),
      position_ids: int64([B, t], positions),
      attention_mask: this.cache.attentionMask(mask, t),
      ...this.cache.pastFeeds(),
    };
    if (this.session.inputNames.includes('lora_slot')) {
      Object.assign(feeds, this.loraFeeds);
      feeds.lora_slot = int64(
        [B],
        this.rows.map((r) => r.slot ?? 0),
      );
    }
    const out = await this.session.run(feeds, this.outputNames);
    this.cache.append(out, mask, t);
    const V = this.config.vocabSize;
    const logits = out.logits!.data as Float32Array;
    return Array.from({ length: B }, (_, b) => logits.slice(b * V, (b + 1) * V));
  }

  /** Feeds the prompts (left-padded to the longest); returns each row's next-token logits (V). */
  async prefill(): Promise<Float32Array[]> {
    invariant(!this.prefilled, 'prefill called twice');
    this.prefilled = true;
    const B = this.rows.length;
    const T = Math.max(...this.rows.map((r) => r.promptIds.length));
    const ids = new Array<number>(B * T).fill(0);
    const pos = new Array<number>(B * T).fill(0);
    const mask = new Uint8Array(B * T);
    this.rows.forEach((r, b) => {
      const pad = T - r.promptIds.length;
      r.promptIds.forEach((id, j) => {
        ids[b * T + pad + j] = id;
        pos[b * T + pad + j] = j;
        mask[b * T + pad + j] = 1;
      });
      this.positions[b] = r.promptIds.length;
    });
    return this.run(ids, mask, pos, T);
  }

  /** Feeds one token per row; returns each row's next-token logits. */
  async step(tokens: readonly number[]): Promise<Float32Array[]> {
    invariant(this.prefilled, 'step before prefill');
    invariant(
      tokens.length === this.rows.length,
      () => `step: ${tokens.length} tokens for ${this.rows.length} rows`,
    );
    const pos = [...this.positions];
    for (let b = 0; b < this.positions.length; b++) this.positions[b]!++;
    return this.run([...tokens], new Uint8Array(tokens.length).fill(1), pos, 1);
  }
}
