/**
 * Writing model outputs the way a reader never sees half of them: everything goes to a temp path beside the
 * destination and is renamed into place at the end (`writeBeside`), and weights are written as F32
 * safetensors, sharded with transformers' `model-0000i-of-0000n.safetensors` + index layout when large
 * (`writeSafetensorsShards`), one shard in memory at a time. Used by export-model.ts and import-gguf.ts;
 * the checkpoint reader is ../formats/checkpoint.ts.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BadInputError } from '../../shared/errors.js';
import { writeSafetensors, type TensorInput } from '../formats/safetensors.js';

/** The destination of an export or import cannot be written (it exists, its parent is missing, …). */
export class OutputPathError extends BadInputError {}

/** Tokenizer files a Hugging Face model directory may hold, copied as they are. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.jinja',
] as const;

/** Shards stay under 2 GiB so each is one `readFile` for the checkpoint reader. */
export const DEFAULT_MAX_SHARD_BYTES = 1 << 30;

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `write(tmp)` on a temp path beside `out` (same directory, so the rename is atomic), then renames it to
 * `out`. An existing `out` is refused unless `force`, and then replaced only once the new one is complete.
 * Whatever happens, no temp path is left behind.
 */
export async function writeBeside(
  out: string,
  force: boolean,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  const existed = await pathExists(out);
  if (existed && !force) throw new OutputPathError(`${out} already exists (--force replaces it)`);
  const parent = dirname(out);
  if (!(await pathExists(parent)))
    throw new OutputPathError(`${parent} (the parent of ${out}) does not exist`);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = join(parent, `.${basename(out)}.tmp-${tag}`);
  const old = join(parent, `.${basename(out)}.old-${tag}`);
  try {
    await write(tmp);
    if (existed && (await stat(out)).isDirectory()) {
      // A directory cannot be renamed over another: move the old one aside first, drop it after.
      await rename(out, old);
      await rename(tmp, out);
    } else {
      await rename(tmp, out);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await rm(old, { recursive: true, force: true });
  }
}

export interface TensorSource {
  name: string;
  shape: number[];
  /** Called once, when the tensor's shard is written. */
  data: () => Float32Array;
}

/**
 * F32 safetensors in `dir`: `model.safetensors` when everything fits one shard of `maxShardBytes`, else
 * `model-0000i-of-0000n.safetensors` + `model.safetensors.index.json`. Returns the bytes of tensor data.
 */
export async function writeSafetensorsShards(
  dir: string,
  tensors: readonly TensorSource[],
  maxShardBytes = DEFAULT_MAX_SHARD_BYTES,
): Promise<number> {
  const shards: TensorSource[][] = [[]];
  let size = 0;
  let total = 0;
  for (const t of tensors) {
    const n = 4 * t.shape.reduce((a, b) => a * b, 1);
    if (size > 0 && size + n > maxShardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(t);
    size += n;
    total += n;
  }
  const names = shards.map((_, i) =>
    shards.length === 1
      ? 'model.safetensors'
      : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`,
  );
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    const input: Record<string, TensorInput> = {};
    for (const t of shards[i]!) {
      input[t.name] = { dtype: 'F32', shape: t.shape, data: t.data() };
      weightMap[t.name] = names[i]!;
    }
    await writeFile(join(dir, names[i]!), writeSafetensors(input, { format: 'pt' }));
  }
  if (shards.length > 1) {
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
  }
  return total;
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(value, null, 2) + '\n');
}

/** A JSON object file, or null when the file does not exist. */
export async function readJsonObject(path: string): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BadInputError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new BadInputError(`${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new BadInputError(`${path} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Copies the tokenizer files `from` has into `to`; returns their names. */
export async function copyTokenizerFiles(from: string, to: string): Promise<string[]> {
  const copied: string[] = [];
  for (const f of TOKENIZER_FILES) {
    if (await pathExists(join(from, f))) {
      await copyFile(join(from, f), join(to, f));
      copied.push(f);
    }
  }
  return copied;
}
