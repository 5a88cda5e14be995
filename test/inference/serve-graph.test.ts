// The continuous-batching serving graph (GroupQueryAttention over a slot pool, stacked LoRA columns) against
// the float64 reference forward: prefill in chunks, rows of different lengths, mixed adapters, rows moved.
import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../src/engine/formats/checkpoint.js';
import type { LoraAdapter } from '../../src/engine/formats/peft.js';
import { ReferenceModel } from '../../src/engine/nn/reference.js';
import { buildServeGraph } from '../../src/engine/nn/llama-serve.js';
import { prepareWeights } from '../../src/engine/nn/weights.js';
import { EngineSession } from '../../src/engine/onnx/session.js';
import { runBatchStep } from '../../src/inference/batch-step.js';
import { KvPool } from '../../src/inference/kv-pool.js';
import { LoraColumns } from '../../src/inference/lora-columns.js';
import { expectClose } from '../helpers/expect-close.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

async function sessions(ckpt: Checkpoint) {
  const w = prepareWeights(ckpt);
  return {
    base: await EngineSession.create(buildServeGraph(ckpt.config, w)),
    stacked: await EngineSession.create(buildServeGraph(ckpt.config, w, { lora: 'stacked' })),
  };
}

function rowsOf(logits: Float32Array, V: number): Float32Array[] {
  return Array.from({ length: logits.length / V }, (_, b) => logits.slice(b * V, (b + 1) * V));
}

describe('serving graph (GroupQueryAttention + stacked LoRA)', () => {
  it('matches the reference for chunked prefill and mixed-adapter decode, also after rows move', async () => {
    const ckpt = randomCheckpoint({}, 3);
    const { config } = ckpt;
    const V = config.vocabSize;
    const { stacked } = await sessions(ckpt);
    const adapters: LoraAdapter[] = [
      randomAdapter(config, 4, 11),
      randomAdapter(config, 2, 12, ['q_proj', 'v_proj']),
      randomAdapter(config, 8, 13, ['down_proj', 'o_proj']),
    ];
    const cols = new LoraColumns(config, undefined, 2);
    adapters.forEach((a, i) => cols.place(i + 1, a));
    const pool = new KvPool(config.numLayers, 4, config.numKvHeads, 64, config.headDim);
    const prompts = [
      [1, 5, 9, 2, 7, 3, 8],
      [4, 4, 6],
      [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
    ];
    const slotsOf = [1, 0, 3];
    const refs = prompts.map((_, i) => new ReferenceModel(config, ckpt.tensors, adapters[slotsOf[i]! - 1]));
    for (let i = 0; i < 3; i++) expect(pool.allocate()).toBe(i);
    const feeds = cols.feeds();
    // Rows 0 and 1 start together (right-padded first chunk); row 2 is fed in chunks of 4 alone.
    const first = rowsOf(
      await runBatchStep({
        session: stacked,
        config,
        pool,
        start: 0,
        rows: [
          { ids: prompts[0]!, loraSlot: 1 },
          { ids: prompts[1]!, loraSlot: 0 },
        ],
        loraFeeds: feeds,
      }),
      V,
    );
    expectClose(first[0]!, refs[0]!.forward(prompts[0]!).slice(-V), {
      atol: 1e-4,
      rtol: 1e-4,
      label: 'row 0 prefill',
    });
    expectClose(first[1]!, refs[1]!.forward(prompts[1]!).slice(-V), {
      atol: 1e-4,
      rtol: 1e-4,
      label: 'row 1 prefill',
    });
    let last: Float32Array | undefined;
    for (let at = 0; at < prompts[2]!.length; at += 4) {
      const chunk = prompts[2]!.slice(at, at + 4);
      last = rowsOf(
        await runBatchStep({
          session: stacked,
          config,
          pool,
          start: 2,
          rows: [{ ids: chunk, loraSlot: 3 }],
          loraFeeds: feeds,
        }),
        V,
      )[0];
    }
    expectClose(last!, refs[2]!.forward(prompts[2]!).slice(-V), {
      atol: 1e-4,
      rtol: 1e-4,
      label: 'row 2 chunked',
    });
    expect([...pool.lengths]).toEqual([7, 3, 11, 0]);

    // Decode all three rows together for a few steps, each with its own adapter.
    const order = [0, 1, 2];
    for (let step = 0; step < 3; step++) {
      if (step === 2) {
        // Row 0 moves to the free slot 3 and row 2 into slot 0: [row2, row1, -, row0] → call on slots 0..1 + 3.
        pool.arrange(
          new Map([
            [0, 3],
            [2, 0],
          ]),
        );
        order.splice(0, 3, 2, 1, 0);
      }
      const tokens = order.map((r) => (r * 7 + step * 3) % V);
      const starts = step === 2 ? [0, 1, 3] : [0, 1, 2];
      const out: Float32Array[] = [];
      if (step === 2) {
        out.push(
          ...rowsOf(
            await runBatchStep({
              session: stacked,
              config,
              pool,
              start: 0,
              rows: [0, 1].map((i) => ({ ids: [tokens[i]!], loraSlot: slotsOf[order[i]!] })),
              loraFeeds: feeds,
            }),
            V,
          ),
        );
        out.push(
          ...rowsOf(
            await runBatchStep({
              session: stacked,
              config,
              pool,
              start: 3,
              rows: [{ ids: [tokens[2]!], loraSlot: slotsOf[order[2]!] }],
              loraFeeds: feeds,
            }),
            V,
          ),
        );
      } else {
        out.push(
          ...rowsOf(
            await runBatchStep({
              session: stacked,
              config,
              pool,
              start: starts[0]!,
              rows: order.map((r, i) => ({ ids: [tokens[i]!], loraSlot: slotsOf[r] })),
              loraFeeds: feeds,
            }),
            V,
          ),
        );
      }
      order.forEach((r, i) =>
        expectClose(out[i]!, refs[r]!.step(tokens[i]!), {
          atol: 1e-4,
          rtol: 1e-4,
          label: `step ${step} row ${r}`,
        }),
      );
    }
  });

  it('removing and re-placing adapters only changes their own rows', async () => {
    const ckpt = randomCheckpoint({}, 5);
    const { config } = ckpt;
    const V = config.vocabSize;
    const { base, stacked } = await sessions(ckpt);
    const a1 = randomAdapter(config, 4, 21);
    const a2 = randomAdapter(config, 4, 22);
    const cols = new LoraColumns(config, undefined, 1);
    cols.place(1, a1);
    cols.place(2, a2);
    cols.remove(1);
    cols.place(3, randomAdapter(config, 2, 23));
    const pool = new KvPool(config.numLayers, 2, config.numKvHeads, 32, config.headDim);
    pool.allocate();
    pool.allocate();
    const prompt = [3, 1, 4, 1, 5];
    const mixed = rowsOf(
      await runBatchStep({
        session: stacked,
        config,
        pool,
        start: 0,
        rows: [
          { ids: prompt, loraSlot: 0 },
          { ids: prompt, loraSlot: 2 },
        ],
        loraFeeds: cols.feeds(),
      }),
      V,
    );
    const pool2 = new KvPool(config.numLayers, 1, config.numKvHeads, 32, config.headDim);
    pool2.allocate();
    const alone = rowsOf(
      await runBatchStep({ session: base, config, pool: pool2, start: 0, rows: [{ ids: prompt }] }),
      V,
    );
    expectClose(mixed[0]!, alone[0]!, { atol: 1e-5, rtol: 1e-5, label: 'slot 0 = base model' });
    expectClose(mixed[1]!, new ReferenceModel(config, ckpt.tensors, a2).forward(prompt).slice(-V), {
      atol: 1e-4,
      rtol: 1e-4,
      label: 'slot 2',
    });
  });
});
