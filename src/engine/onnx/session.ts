/**
 * The ONLY module that imports onnxruntime-node. Wraps an InferenceSession behind HostTensor feeds/fetches,
 * session options from config (threads, execution providers: 'cpu' by default, 'cuda' as a switch for a GPU
 * deployment with the CUDA provider libraries installed, docs/OPERATIONS.md), and pre-allocated outputs (the
 * decode loop's in-place buffers). Graph → bytes is ./emit.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Graph } from '../ir/graph.js';
import type { HostTensor, TensorArray } from '../ir/types.js';
import { emitOnnx, initializerBytes, writeOnnxWithExternalData } from './emit.js';

export type ExecutionProvider = 'cpu' | 'cuda';

/**
 * The `executionProviders` list for a configured provider: 'cuda' → ['cuda', 'cpu'] (nodes the CUDA EP lacks
 * fall back to the CPU), 'cpu' → ['cpu'].
 */
export function executionProvidersFor(provider: ExecutionProvider): ExecutionProvider[] {
  return provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'];
}

export interface SessionConfig {
  /** Intra-op threads; default: ORT's choice (all cores). */
  threads?: number;
  /** Tried in order; default ['cpu']. 'cuda' needs the CUDA build of onnxruntime-node. */
  executionProviders?: readonly ExecutionProvider[];
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Logging severity 0 (verbose) … 4 (fatal); default 3 (errors). */
  logSeverity?: 0 | 1 | 2 | 3 | 4;
  /**
   * Graphs whose initializers exceed this many bytes load through a temporary ONNX file with external data
   * (protobuf caps a model at 2 GiB). Default 1.5 GiB.
   */
  externalDataThresholdBytes?: number;
  /** Where that temporary file goes; default the OS temp dir. */
  tempDir?: string;
  /**
   * ORT's CPU arena grows in power-of-two chunks and never shrinks: right for a decode loop that reuses the
   * same buffers, wasteful for a training step whose activations are freed after each run. Default true.
   */
  enableCpuMemArena?: boolean;
}

export class SessionCreateError extends Error {
  override name = 'SessionCreateError';
  readonly code = 'ENGINE_SESSION_CREATE';
}

function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(t.dtype, t.data as never, [...t.shape]);
}

function fromOrt(t: ort.Tensor): HostTensor {
  return {
    dtype: t.type as HostTensor['dtype'],
    shape: t.dims.map(Number),
    data: t.data as TensorArray,
  };
}

export class EngineSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  static async create(model: Graph | Uint8Array, config: SessionConfig = {}): Promise<EngineSession> {
    const external =
      !(model instanceof Uint8Array) &&
      initializerBytes(model) > (config.externalDataThresholdBytes ?? 1.5 * 2 ** 30);
    if (external) {
      const dir = mkdtempSync(join(config.tempDir ?? tmpdir(), 'deltagate-onnx-'));
      try {
        return await EngineSession.open(writeOnnxWithExternalData(model as Graph, dir), config);
      } finally {
        // onnxruntime has read (or mapped) the weights by now; an unlinked mapped file stays valid.
        rmSync(dir, { recursive: true, force: true });
      }
    }
    return EngineSession.open(model instanceof Uint8Array ? model : emitOnnx(model), config);
  }

  private static async open(model: Uint8Array | string, config: SessionConfig): Promise<EngineSession> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [...(config.executionProviders ?? ['cpu'])],
      graphOptimizationLevel: config.graphOptimizationLevel ?? 'all',
      logSeverityLevel: config.logSeverity ?? 3,
      enableCpuMemArena: config.enableCpuMemArena ?? true,
      ...(config.threads === undefined ? {} : { intraOpNumThreads: config.threads, interOpNumThreads: 1 }),
    };
    try {
      const session =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, options)
          : await ort.InferenceSession.create(model, options);
      return new EngineSession(session, session.inputNames, session.outputNames);
    } catch (err) {
      throw new SessionCreateError(`onnxruntime could not load the graph: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /**
   * Runs the graph. `outputs` names what to fetch: a name list, or a map from name to a pre-allocated
   * HostTensor that onnxruntime fills in place (its data array is returned as is).
   */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[] | Readonly<Record<string, HostTensor>>,
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    let result: ort.InferenceSession.ReturnType;
    if (outputs === undefined) result = await this.session.run(ortFeeds);
    else if (Array.isArray(outputs)) result = await this.session.run(ortFeeds, outputs as string[]);
    else {
      const fetches: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(outputs as Record<string, HostTensor>)) fetches[k] = toOrt(v);
      result = await this.session.run(ortFeeds, fetches);
    }
    const out: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(result)) out[k] = fromOrt(v);
    // Pre-allocated outputs come back as the caller's own tensors (ORT filled their buffers).
    if (outputs !== undefined && !Array.isArray(outputs)) Object.assign(out, outputs);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Builds, emits and loads a graph in one call. */
export async function createSession(graph: Graph, config: SessionConfig = {}): Promise<EngineSession> {
  return EngineSession.create(graph, config);
}
