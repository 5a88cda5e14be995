/**
 * Storing an EXPORT job's output as one blob, streamed (a real model's export is gigabytes: never one buffer):
 * a GGUF file as it is, an HF directory as one uncompressed ustar archive (tar-stream) whose entries sit under
 * one top-level folder. Create-only writes; the store hashes what it stores (the artifact's sha256). The job
 * around it is ./derive-handler.ts; the key layout is src/storage/keys.ts (`exportArtifactKey`).
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pack as tarPack, type Pack } from 'tar-stream';
import type { BlobStore, PutOptions, PutResult } from '../storage/blob-store.js';

const CREATE_ONLY: PutOptions = { ifNoneMatch: true, contentType: 'application/octet-stream' };

async function putStreamed(
  blobs: BlobStore,
  key: string,
  body: AsyncIterable<Uint8Array>,
  whole: () => Promise<Uint8Array>,
): Promise<PutResult> {
  // Both stores stream; a store without putStream gets the bytes in one piece.
  return blobs.putStream
    ? blobs.putStream(key, body, CREATE_ONLY)
    : blobs.put(key, await whole(), CREATE_ONLY);
}

/** One file (a GGUF export) as the blob `key`. */
export async function putFileArtifact(blobs: BlobStore, key: string, file: string): Promise<PutResult> {
  return putStreamed(blobs, key, createReadStream(file), () => readFile(file));
}

/** Writes every file of `dir` (flat: an HF export has no subfolders) into `pack` under `root/`, sorted. */
async function feedTar(pack: Pack, dir: string, root: string): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const { size } = await stat(path);
    // The callback fires when the entry's bytes are in the archive (or the pack failed).
    let entryDone: (err?: Error | null) => void = () => undefined;
    const written = new Promise<void>((resolve, reject) => {
      entryDone = (err) => (err ? reject(err) : resolve());
    });
    const entry = pack.entry({ name: `${root}/${name}`, size, mode: 0o644, mtime: new Date() }, (err) =>
      entryDone(err),
    );
    for await (const chunk of createReadStream(path)) {
      if (!entry.write(chunk)) await new Promise<void>((resolve) => entry.once('drain', () => resolve()));
    }
    entry.end(undefined);
    await written;
  }
  pack.finalize();
}

/** An HF export directory as one .tar blob `key` whose files sit under `root/`. */
export async function putTarArtifact(
  blobs: BlobStore,
  key: string,
  dir: string,
  root: string,
): Promise<PutResult> {
  const pack = tarPack();
  const feeding = feedTar(pack, dir, root).catch((err: unknown) => {
    pack.destroy(err as Error);
    throw err;
  });
  const collect = async () => {
    const chunks: Buffer[] = [];
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  };
  try {
    const put = await putStreamed(blobs, key, pack as AsyncIterable<Uint8Array>, collect);
    await feeding;
    return put;
  } catch (err) {
    pack.destroy(err as Error);
    await feeding.catch(() => undefined);
    throw err;
  }
}
