/**
 * Worker thread of serving-model.ts: loads the checkpoint, merges one adapter into the serving grid's weights
 * (prepareWeights with `mergeAdapter`), builds and serializes the serving graph, and transfers the ONNX bytes
 * back — the seconds of arithmetic and protobuf encoding a merge costs never run on the event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadCheckpoint } from '../engine/formats/checkpoint.js';
import { buildServeGraph } from '../engine/nn/llama-serve.js';
import { prepareWeights, type PrepareOptions } from '../engine/nn/weights.js';
import { emitOnnx } from '../engine/onnx/emit.js';

const { dir, options } = workerData as { dir: string; options: PrepareOptions };
try {
  const ckpt = await loadCheckpoint(dir);
  const bytes = emitOnnx(buildServeGraph(ckpt.config, prepareWeights(ckpt, options)));
  const owned =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  parentPort!.postMessage(owned, [owned.buffer as ArrayBuffer]);
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
