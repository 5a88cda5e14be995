/**
 * The worker thread of session-host.ts: owns a model's onnxruntime sessions, a local copy of each remote KV
 * pool (kept equal to the main thread's bookkeeping by replaying its journal) and a replica of each LoRA
 * column stack (synced when adapters are placed or removed), and runs batch steps over them with the same
 * runBatchStep the main thread would — so the synchronous native run blocks this thread, never the event
 * loop. Requests run one at a time, in arrival order.
 */
import { parentPort, threadId } from 'node:worker_threads';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { HostTensor } from '../engine/ir/types.js';
import { EngineSession } from '../engine/onnx/session.js';
import { invariant } from '../shared/invariant.js';
import { runBatchStep } from './batch-step.js';
import { KvPool } from './kv-pool.js';
import { LoraColumns } from './lora-columns.js';
import type { CreatedSession, HostReply, HostRequest } from './session-host.js';

const port = parentPort!;
const sessions = new Map<number, EngineSession>();
const pools = new Map<number, { pool: KvPool; config: ModelConfig }>();
const columns = new Map<number, LoraColumns>();

function session(sid: number): EngineSession {
  const s = sessions.get(sid);
  invariant(s, () => `session worker has no session ${sid}`);
  return s;
}

/** The buffer of a typed array to transfer back (a compact copy when it is a view). */
function movable<T extends HostTensor['data']>(x: T): T {
  return x.byteOffset === 0 && x.byteLength === x.buffer.byteLength ? x : (x.slice() as T);
}

async function serve(m: Exclude<HostRequest, { t: 'forget' }>): Promise<[unknown, ArrayBuffer[]]> {
  switch (m.t) {
    case 'create': {
      const s = await EngineSession.create(m.bytes, m.config);
      sessions.set(m.sid, s);
      const made: CreatedSession = {
        inputNames: [...s.inputNames],
        outputNames: [...s.outputNames],
        threadId,
      };
      return [made, []];
    }
    case 'run': {
      const out: Record<string, HostTensor> = {};
      const transfer: ArrayBuffer[] = [];
      for (const [k, t] of Object.entries(await session(m.sid).run(m.feeds, m.fetches))) {
        out[k] = { ...t, data: movable(t.data) };
        transfer.push(out[k].data.buffer as ArrayBuffer);
      }
      return [out, transfer];
    }
    case 'step': {
      // Bookkeeping first, whatever happens to the call: the main thread has already applied it.
      let entry = pools.get(m.pool.id);
      if ('state' in m.pool) {
        entry = { pool: KvPool.fromState(m.pool.state), config: m.pool.config };
        pools.set(m.pool.id, entry);
      } else {
        invariant(entry, () => `session worker has no pool ${m.pool.id}`);
        entry.pool.apply(m.pool.ops);
      }
      let lora: LoraColumns | undefined;
      if (m.lora) {
        lora = columns.get(m.lora.id);
        if (!lora) columns.set(m.lora.id, (lora = new LoraColumns(entry.config, m.lora.sync.modules, 0)));
        lora.applySync(m.lora.sync);
      }
      const logits = movable(
        await runBatchStep({
          session: session(m.sid),
          config: entry.config,
          pool: entry.pool,
          start: m.start,
          rows: m.rows,
          loraFeeds: lora?.feeds(),
        }),
      );
      return [logits, [logits.buffer as ArrayBuffer]];
    }
    case 'release': {
      await sessions.get(m.sid)?.release();
      sessions.delete(m.sid);
      return [null, []];
    }
  }
}

async function handle(m: HostRequest): Promise<void> {
  if (m.t === 'forget') {
    if (m.pool !== undefined) pools.delete(m.pool);
    if (m.columns !== undefined) columns.delete(m.columns);
    return;
  }
  try {
    const [ok, transfer] = await serve(m);
    port.postMessage({ id: m.id, ok } satisfies HostReply, transfer);
  } catch (err) {
    const e = err as Error & { code?: string };
    port.postMessage({
      id: m.id,
      error: { name: e.name, message: e.message, code: e.code },
    } satisfies HostReply);
  }
}

let queue = Promise.resolve();
port.on('message', (m: HostRequest) => {
  queue = queue.then(() => handle(m));
});
