/**
 * The serving grid: how generation loads a base model so an adapter runs on the weights it was trained on.
 * QLoRA trains against the quantized base Q(W), so serving it on fp32 W (or merging it as Q(W + s·B·A)) is
 * train/serve drift. `engineLoadOptions(base, runtime)` turns a base model's `servingQuantization` and the
 * process's execution provider into the options `Engine.load` / `LoadedModel.load` take
 * (src/inference/model.ts `ModelLoadOptions`):
 *
 * - 'none': fp32 checkpoint weights.
 * - 'nf4': the trainer's NF4 + double-quantization weights. On 'cpu' as their exact fp32 dequantization
 *   (MatMulBnb4 is ~10× slower than an fp32 MatMul at batch 1 on CPU); on 'cuda' as MatMulBnb4 itself (the
 *   4-bit weights stay 4-bit in GPU memory, and the CUDA kernel is not the CPU bottleneck).
 * - 'int4': the MatMulNBits grid with prepareWeights' defaults (block 64, accuracy level 4), the same
 *   kernel and settings as the forward of `train --quantize int4`.
 *
 * A merged adapter is always dequant(Q(W)) + s·B·A in fp32 for the modules it targets ('quantize-then-merge');
 * side-loading keeps the whole base on the grid. Pure: no I/O, no onnxruntime session.
 */
import type { MergeOrder, Nf4Execution, Quantization } from '../engine/nn/weights.js';
import { executionProvidersFor, type ExecutionProvider } from '../engine/onnx/session.js';
import type { BaseModel } from './base-models.js';

/** What the process runs on (DELTAGATE_EXECUTION_PROVIDER). */
export interface ServingRuntime {
  executionProvider: ExecutionProvider;
}

/** A plain object assignable to `ModelLoadOptions` (src/inference/model.ts). */
export interface EngineLoadOptions {
  quantize: Quantization;
  /** Only with quantize 'nf4': 'dequantized' on the CPU, 'bnb4' (MatMulBnb4) on CUDA. */
  nf4Execution?: Nf4Execution;
  mergeOrder: MergeOrder;
  session: { executionProviders: ExecutionProvider[] };
}

export function engineLoadOptions(
  base: Pick<BaseModel, 'servingQuantization'>,
  runtime: ServingRuntime,
): EngineLoadOptions {
  const quantize = base.servingQuantization;
  const nf4Execution: Nf4Execution = runtime.executionProvider === 'cuda' ? 'bnb4' : 'dequantized';
  return {
    quantize,
    ...(quantize === 'nf4' ? { nf4Execution } : {}),
    mergeOrder: 'quantize-then-merge',
    session: { executionProviders: executionProvidersFor(runtime.executionProvider) },
  };
}
