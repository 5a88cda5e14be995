/**
 * The storage key layout (documented in docs/STORAGE.md) and the one validator every key and prefix goes
 * through. Each id segment is checked (no '/', '\', '.', '..', control characters, empty) so no customer-
 * supplied name can escape its prefix; both blob stores call `assertValidKey` again on every operation.
 * Not the stores themselves: see `blob-store.ts`.
 */
import { InvalidBlobKeyError } from './blob-store.js';

export const MAX_KEY_BYTES = 1024;
const MAX_SEGMENT_BYTES = 255;

// C0/C1 control characters, DEL, and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function segmentProblem(segment: string): string | null {
  if (segment === '') return 'empty segment';
  if (segment === '.' || segment === '..') return `segment "${segment}"`;
  if (segment.includes('/')) return 'segment contains "/"';
  if (segment.includes('\\')) return 'segment contains "\\"';
  if (CONTROL.test(segment)) return 'control character';
  if (/\p{Surrogate}/u.test(segment)) return 'lone surrogate';
  if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return `segment longer than ${MAX_SEGMENT_BYTES} bytes`;
  return null;
}

/** A full object key: '/'-separated valid segments, no leading or trailing '/'. */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new InvalidBlobKeyError(String(key), 'empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES)
    throw new InvalidBlobKeyError(key, `longer than ${MAX_KEY_BYTES} bytes`);
  for (const s of key.split('/')) {
    const why = segmentProblem(s);
    if (why !== null) throw new InvalidBlobKeyError(key, why);
  }
}

/** A listing prefix: '' (everything) or valid segments ending in '/'. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  if (!prefix.endsWith('/')) throw new InvalidBlobKeyError(prefix, 'a prefix must end with "/"');
  assertValidKey(prefix.slice(0, -1));
}

/** One id or name inside a key. */
export function segment(value: string, what: string): string {
  const why = typeof value === 'string' ? segmentProblem(value) : 'not a string';
  if (why !== null) throw new InvalidBlobKeyError(String(value), `${what}: ${why}`);
  return value;
}

function positiveInt(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidBlobKeyError(String(n), `${what} must be an integer >= 0`);
  return n;
}

export function customerPrefix(customerId: string): string {
  return `customers/${segment(customerId, 'customer id')}/`;
}

/** `customers/{cid}/datasets/{did}/data.jsonl` */
export function datasetKey(customerId: string, datasetId: string): string {
  return `${customerPrefix(customerId)}datasets/${segment(datasetId, 'dataset id')}/data.jsonl`;
}

/** `customers/{cid}/datasets/{did}/` */
export function datasetPrefix(customerId: string, datasetId: string): string {
  return `${customerPrefix(customerId)}datasets/${segment(datasetId, 'dataset id')}/`;
}

/** `customers/{cid}/adapters/{aid}/` — every version of one adapter. */
export function adapterPrefix(customerId: string, adapterId: string): string {
  return `${customerPrefix(customerId)}adapters/${segment(adapterId, 'adapter id')}/`;
}

/** `customers/{cid}/adapters/{aid}/v{n}/` — holds adapter_config.json, adapter_model.safetensors, metrics.json. */
export function adapterVersionPrefix(customerId: string, adapterId: string, version: number): string {
  return `${adapterPrefix(customerId, adapterId)}v${positiveInt(version, 'version')}/`;
}

export const ADAPTER_FILES = {
  config: 'adapter_config.json',
  weights: 'adapter_model.safetensors',
  metrics: 'metrics.json',
} as const;

export type AdapterFile = keyof typeof ADAPTER_FILES;

export function adapterFileKey(
  customerId: string,
  adapterId: string,
  version: number,
  file: AdapterFile,
): string {
  return adapterVersionPrefix(customerId, adapterId, version) + ADAPTER_FILES[file];
}

/** `customers/{cid}/jobs/{jobId}/checkpoints/` */
export function checkpointPrefix(customerId: string, jobId: string): string {
  return `${customerPrefix(customerId)}jobs/${segment(jobId, 'job id')}/checkpoints/`;
}

/** `customers/{cid}/jobs/{jobId}/checkpoints/step-{n}/` */
export function checkpointStepPrefix(customerId: string, jobId: string, step: number): string {
  return `${checkpointPrefix(customerId, jobId)}step-${positiveInt(step, 'step')}/`;
}

/** `customers/{cid}/jobs/{jobId}/export/` — an EXPORT job's artifacts, one folder per run (attempt). */
export function exportPrefix(customerId: string, jobId: string): string {
  return `${customerPrefix(customerId)}jobs/${segment(jobId, 'job id')}/export/`;
}

/**
 * `customers/{cid}/jobs/{jobId}/export/a{attempt}/{file}` — `file` is a fixed name (`model.gguf`,
 * `model.tar`), never a customer's: each run writes create-only under its own attempt, so two overlapping
 * runs of one job never touch each other's file and the one that registers in SQL wins.
 */
export function exportArtifactKey(customerId: string, jobId: string, attempt: number, file: string): string {
  return `${exportPrefix(customerId, jobId)}a${positiveInt(attempt, 'attempt')}/${segment(file, 'file name')}`;
}

/** `customers/{cid}/uploads/{uploadId}` */
export function uploadKey(customerId: string, uploadId: string): string {
  return `${customerPrefix(customerId)}uploads/${segment(uploadId, 'upload id')}`;
}
