/**
 * Worker-thread side of ./peft-thread.ts: parses one PEFT adapter and posts it back with its weight buffers
 * transferred (no copy), or posts the refusal (error class name, message, details) for the caller to rethrow.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModelConfig } from './hf-config.js';
import { parsePeftAdapter } from './peft.js';

const { adapterConfig, weights, base } = workerData as {
  adapterConfig: unknown;
  weights: Uint8Array;
  base: ModelConfig;
};
try {
  const adapter = parsePeftAdapter(adapterConfig, weights, base);
  const buffers = new Set<ArrayBuffer>();
  for (const w of adapter.weights.values()) for (const m of [w.a, w.b]) buffers.add(m.buffer as ArrayBuffer);
  parentPort!.postMessage({ adapter }, [...buffers]);
} catch (err) {
  const e = err as Error & { details?: Record<string, unknown> };
  parentPort!.postMessage({ error: { name: e.name, message: e.message, details: e.details ?? null } });
}
