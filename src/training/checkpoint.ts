/**
 * What a training checkpoint holds and how it is (de)serialized: LoRA weights and AdamW moments in one
 * safetensors file, and a JSON state (step, data position, RNG seed, histories, a fingerprint of the run
 * configuration). Where the bytes go is `checkpoint-store.ts`; when they are written is `trainer.ts`.
 * The data order and dropout masks are pure functions of (seed, epoch, step), so the seed IS the RNG state.
 */
import {
  parseSafetensors,
  toFloat32,
  writeSafetensors,
  type TensorInput,
} from '../engine/formats/safetensors.js';
import type { AdamWState } from './adamw.js';
import type { CheckpointFiles } from './checkpoint-store.js';
import { CheckpointMismatchError } from './errors.js';

export const CHECKPOINT_VERSION = 1;
const STATE_FILE = 'state.json';
const TENSOR_FILE = 'tensors.safetensors';

export interface LossPoint {
  step: number;
  loss: number;
  learningRate: number;
}

export interface EvalPoint {
  step: number;
  loss: number;
}

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** The epoch and micro-batch cursor of the next step (derived from step; stored for humans). */
  epoch: number;
  microBatch: number;
  seed: number;
  /** Identity of the run configuration; a resume with a different one is refused. */
  fingerprint: string;
  lossHistory: LossPoint[];
  evalHistory: EvalPoint[];
  /** Tokens processed by completed steps (for metrics across a resume). */
  tokens: number;
}

export interface Checkpoint {
  state: TrainerState;
  params: Map<string, Float32Array>;
  optimizer: AdamWState;
}

export function serializeCheckpoint(c: Checkpoint): CheckpointFiles {
  const tensors: Record<string, TensorInput> = {};
  for (const [name, p] of c.params) {
    tensors[`param/${name}`] = { dtype: 'F32', shape: [p.length], data: p };
    tensors[`m/${name}`] = { dtype: 'F32', shape: [p.length], data: c.optimizer.m[name]! };
    tensors[`v/${name}`] = { dtype: 'F32', shape: [p.length], data: c.optimizer.v[name]! };
  }
  const state = { version: CHECKPOINT_VERSION, optimizerStep: c.optimizer.step, ...c.state };
  return {
    [STATE_FILE]: new TextEncoder().encode(JSON.stringify(state)),
    [TENSOR_FILE]: writeSafetensors(tensors),
  };
}

export function deserializeCheckpoint(files: CheckpointFiles, expectedFingerprint: string): Checkpoint {
  const stateBytes = files[STATE_FILE];
  const tensorBytes = files[TENSOR_FILE];
  if (!stateBytes || !tensorBytes)
    throw new CheckpointMismatchError(`checkpoint lacks ${STATE_FILE} or ${TENSOR_FILE}`);
  const raw = JSON.parse(new TextDecoder().decode(stateBytes)) as TrainerState & {
    version: number;
    optimizerStep: number;
  };
  if (raw.version !== CHECKPOINT_VERSION)
    throw new CheckpointMismatchError(`checkpoint version ${raw.version} unsupported`);
  if (raw.fingerprint !== expectedFingerprint) {
    throw new CheckpointMismatchError(
      'the checkpoint was written by a run with different data, model or hyper-parameters; refusing to resume',
    );
  }
  const file = parseSafetensors(tensorBytes);
  const params = new Map<string, Float32Array>();
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const [key, entry] of file.tensors) {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const data = Float32Array.from(toFloat32(entry));
    if (kind === 'param') params.set(name, data);
    else if (kind === 'm') m[name] = data;
    else if (kind === 'v') v[name] = data;
  }
  const { version: _v, optimizerStep, ...state } = raw;
  return { state, params, optimizer: { step: optimizerStep, m, v } };
}
