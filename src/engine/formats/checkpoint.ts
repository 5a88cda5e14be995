/**
 * A Hugging Face model directory (`config.json` + `model.safetensors`, or shards listed in
 * `model.safetensors.index.json`) → float32 tensors checked against the config: every tensor the
 * architecture needs is present with the right shape; extras (rotary `inv_freq`, a tied `lm_head`) are
 * dropped. Not the graph builder (src/engine/nn/) nor the safetensors parser (`safetensors.ts`).
 */
import { access, mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BadInputError } from '../../shared/errors.js';
import { expectedTensors, parseModelConfig, type ModelConfig } from './hf-config.js';
import {
  parseSafetensors,
  toFloat32,
  writeSafetensors,
  type TensorEntry,
  type TensorInput,
} from './safetensors.js';

export interface Tensor32 {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  dir: string;
  config: ModelConfig;
  rawConfig: Record<string, unknown>;
  /** Exactly the tensors `expectedTensors(config)` lists, as float32. */
  tensors: Map<string, Tensor32>;
}

/** A model directory whose files are missing, unreadable, or do not match its config. */
export class CheckpointError extends BadInputError {
  constructor(message: string, options?: { cause?: unknown; tensor?: string }) {
    super(message, {
      cause: options?.cause,
      details: options?.tensor === undefined ? undefined : { tensor: options.tensor },
    });
  }
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new CheckpointError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new CheckpointError(`${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A whole file in one buffer. `readFile` refuses files over 2 GiB (ERR_FS_FILE_TOO_LARGE), and single-file
 * checkpoints such as TinyLlama-1.1B's 2.2 GB model.safetensors are larger: read them in 1 GiB pieces into
 * one buffer instead (Node's buffers go to 4 GiB; a larger file must be sharded, and the error says so).
 */
async function readWholeFile(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > 2 ** 32) throw new Error(`${size} bytes is more than one 4 GiB buffer holds (shard it)`);
    const buf = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(buf, at, Math.min(size - at, 1 << 30), at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return buf.subarray(0, at);
  } finally {
    await fh.close();
  }
}

/** name → entry across all shards (a name in two shards is an error). */
async function readEntries(dir: string): Promise<Map<string, TensorEntry>> {
  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, 'model.safetensors.index.json');
  const files: string[] = [];
  if (await exists(indexPath)) {
    const index = await readJson(indexPath);
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new CheckpointError(`${indexPath}: weight_map is missing or not an object`);
    }
    for (const f of Object.values(map as Record<string, unknown>)) {
      // Shards are plain file names beside the index; anything with a path separator could escape the dir.
      if (typeof f !== 'string' || !/^[\w.-]+\.safetensors$/.test(f) || f.startsWith('.')) {
        throw new CheckpointError(
          `${indexPath}: shard name ${JSON.stringify(f)} is not a plain .safetensors file name`,
        );
      }
      if (!files.includes(f)) files.push(f);
    }
    files.sort();
  } else {
    files.push('model.safetensors');
  }
  const entries = new Map<string, TensorEntry>();
  for (const f of files) {
    const path = f === 'model.safetensors' ? single : join(dir, f);
    let bytes: Uint8Array;
    try {
      bytes = await readWholeFile(path);
    } catch (cause) {
      throw new CheckpointError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
    }
    const file = parseSafetensors(bytes);
    for (const [name, e] of file.tensors) {
      if (entries.has(name))
        throw new CheckpointError(`tensor ${name} appears in more than one shard (${f})`, { tensor: name });
      entries.set(name, e);
    }
  }
  return entries;
}

/**
 * Why `dir` cannot be a Hugging Face model directory — 'does not exist', 'is not a directory', 'has no
 * config.json (…)' — or null when it might be. For messages that say what is wrong with the path someone
 * gave (`--model`, DELTAGATE_BASE_MODELS) before a missing file deeper down says something misleading.
 */
export async function modelDirProblem(dir: string): Promise<string | null> {
  try {
    if (!(await stat(dir)).isDirectory()) return 'is not a directory';
  } catch {
    return 'does not exist';
  }
  try {
    await access(join(dir, 'config.json'));
  } catch {
    return 'has no config.json (not a Hugging Face model directory)';
  }
  return null;
}

/** Only `config.json` (no weights read): for callers that validate against a base without loading it. */
export async function loadModelConfig(
  dir: string,
): Promise<{ config: ModelConfig; rawConfig: Record<string, unknown> }> {
  const rawConfig = await readJson(join(dir, 'config.json'));
  return { config: parseModelConfig(rawConfig), rawConfig: rawConfig as Record<string, unknown> };
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const { config, rawConfig } = await loadModelConfig(dir);
  const entries = await readEntries(dir);
  const tensors = new Map<string, Tensor32>();
  for (const { name, shape } of expectedTensors(config)) {
    const e = entries.get(name);
    if (!e)
      throw new CheckpointError(`${dir}: tensor ${name} is missing (expected shape [${shape.join(', ')}])`, {
        tensor: name,
      });
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${dir}: tensor ${name} has shape [${e.shape.join(', ')}], the config needs [${shape.join(', ')}]`,
        { tensor: name },
      );
    }
    if (!FLOAT_DTYPES.has(e.dtype))
      throw new CheckpointError(`${dir}: tensor ${name} has non-float dtype ${e.dtype}`, { tensor: name });
    tensors.set(name, { shape: [...shape], data: toFloat32(e) });
  }
  return { dir, config, rawConfig, tensors };
}

/** Write `config.json` + one F32 `model.safetensors` (deterministic bytes for the same input). */
export async function writeCheckpoint(
  dir: string,
  rawConfig: Record<string, unknown>,
  tensors: Map<string, Tensor32>,
): Promise<void> {
  const input: Record<string, TensorInput> = {};
  for (const [name, t] of tensors) input[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  const bytes = writeSafetensors(input, { format: 'pt' });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(rawConfig, null, 2) + '\n');
  await writeFile(join(dir, 'model.safetensors'), bytes);
}
