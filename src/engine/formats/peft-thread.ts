/**
 * `parsePeftAdapter` for the API process: parsing checks every weight (finite, bounded) and converts it to
 * float32 — about 0.9 s for a 256 MiB adapter on this machine — so anything above a few MiB is parsed in a
 * worker thread and the event loop keeps answering while it runs. Small adapters (the common case) are parsed
 * inline: a thread start costs more than they do. Refusals come back as the same BAD_USER_INPUT errors.
 */
import { BadInputError } from '../../shared/errors.js';
import { startModuleWorker } from '../../shared/worker-module.js';
import type { ModelConfig } from './hf-config.js';
import { AdapterConfigError, AdapterWeightsError, parsePeftAdapter, type LoraAdapter } from './peft.js';

/** Up to this many weight bytes an adapter is parsed on the calling thread (≈ 15 ms). */
export const INLINE_PARSE_BYTES = 4 * 1024 * 1024;

type Reply =
  | { adapter: LoraAdapter }
  | { error: { name: string; message: string; details: Record<string, unknown> | null } };

function rethrown(e: Extract<Reply, { error: unknown }>['error']): Error {
  const details = e.details ?? undefined;
  switch (e.name) {
    case 'AdapterConfigError':
      return new AdapterConfigError(e.message, { details });
    case 'AdapterWeightsError':
    case 'AdapterShapeMismatchError':
      return new AdapterWeightsError(e.message, { details });
    case 'BadInputError':
      return new BadInputError(e.message, { details });
    default:
      return new Error(`parsing the adapter failed: ${e.message}`);
  }
}

/**
 * `weights` is copied to the thread unless `transfer` is set, in which case its memory moves there and the
 * caller must not use it afterwards.
 */
export async function parsePeftAdapterOffThread(
  adapterConfig: unknown,
  weights: Uint8Array,
  base: ModelConfig,
  options: { transfer?: boolean; inlineBytes?: number } = {},
): Promise<LoraAdapter> {
  if (weights.byteLength <= (options.inlineBytes ?? INLINE_PARSE_BYTES))
    return parsePeftAdapter(adapterConfig, weights, base);
  // A view may sit in a larger (pooled) buffer: hand over exactly its bytes.
  const own =
    options.transfer && weights.byteOffset === 0 && weights.byteLength === weights.buffer.byteLength
      ? weights
      : weights.slice();
  const worker = startModuleWorker(import.meta.url, 'peft-parse-worker', {
    workerData: { adapterConfig, weights: own, base },
    transferList: [own.buffer as ArrayBuffer],
  });
  try {
    const reply = await new Promise<Reply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the adapter parser thread exited with code ${code}`)));
    });
    if ('error' in reply) throw rethrown(reply.error);
    return reply.adapter;
  } finally {
    void worker.terminate();
  }
}
