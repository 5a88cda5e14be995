/**
 * Worker thread of serving-model.ts: loads the checkpoint, prepares the serving grid's weights (quantizing or
 * dequantizing, and merging one adapter when asked: prepareWeights), builds and serializes the serving graph,
 * and transfers the ONNX bytes back — the seconds of arithmetic and protobuf encoding a model load or a merge
 * costs never run on the event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadCheckpoint } from '../engine/formats/checkpoint.js';
import { buildServeGraph, type ServeGraphOptions } from '../engine/nn/llama-serve.js';
import { prepareWeights, type PrepareOptions } from '../engine/nn/weights.js';
import { emitOnnx } from '../engine/onnx/emit.js';

const { dir, options, graph } = workerData as {
  dir: string;
  options: PrepareOptions;
  graph: ServeGraphOptions;
};
try {
  const ckpt = await loadCheckpoint(dir);
  const bytes = emitOnnx(buildServeGraph(ckpt.config, prepareWeights(ckpt, options), graph));
  const owned =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  parentPort!.postMessage(owned, [owned.buffer as ArrayBuffer]);
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
