/**
 * Is a stored blob still what was registered? One streamed pass: its size and SHA-256 against the record, so a
 * changed, truncated or missing file is never handed out (AdapterVersion.downloadUrl, an export's
 * artifact.downloadUrl). Costs one read of the object (gigabytes for a model export), never a buffer of it.
 */
import { createHash } from 'node:crypto';
import type { BlobStore } from '../storage/blob-store.js';
import { NotFoundError } from '../shared/errors.js';

/** Why `key` does not match `expected` (a short phrase for the log and the error), or null when it does. */
export async function storedBlobProblem(
  blobs: BlobStore,
  key: string,
  expected: { sizeBytes: number; sha256: string },
): Promise<string | null> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await blobs.stream(key);
  } catch (err) {
    if (err instanceof NotFoundError) return 'the file is missing';
    throw err;
  }
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += bytes.byteLength;
    if (size > expected.sizeBytes) {
      (stream as { destroy?: () => void }).destroy?.();
      return `larger than the ${expected.sizeBytes} bytes registered`;
    }
    hash.update(bytes);
  }
  if (size !== expected.sizeBytes) return `${size} bytes stored, ${expected.sizeBytes} registered`;
  if (hash.digest('hex') !== expected.sha256) return 'the bytes changed';
  return null;
}
