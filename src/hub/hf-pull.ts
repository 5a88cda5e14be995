/**
 * Downloads a Hugging Face model repository's loadable files (config.json, *.safetensors + index, tokenizer
 * files, generation_config.json) over the Hub's HTTP layout: the file list with sizes and LFS SHA-256s from
 * `GET /api/models/{repo}/revision/{rev}?blobs=true`, contents from `GET /{repo}/resolve/{commit}/{file}`.
 * Each file streams into `<file>.part`, resumes with an HTTP Range after a dropped connection (in this run or
 * a later one), is checked — LFS files against their SHA-256, others against their git blob id — and is
 * renamed into place only when it matches. Pickle weights (`*.bin`) are never fetched.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BadInputError } from '../shared/errors.js';

/** The repository, revision or a file cannot be had, or a download does not match the Hub's checksum. */
export class PullError extends BadInputError {}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

const WANTED = new Set([
  'config.json',
  'generation_config.json',
  'model.safetensors.index.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.jinja',
]);

export interface HubFile {
  path: string;
  size: number | null;
  /** LFS files: the content's SHA-256 (hex). */
  sha256: string | null;
  /** The git blob id (SHA-1 of "blob {size}\0" + content) for files stored in git itself. */
  blobId: string | null;
}

export interface PullProgress {
  file: string;
  /** Bytes of this file on disk so far (resumed bytes included). */
  done: number;
  total: number | null;
  /** 'start' | 'data' | 'retry' | 'verified' | 'skipped' (already present and matching). */
  event: 'start' | 'data' | 'retry' | 'verified' | 'skipped';
  /** For 'retry': why the previous attempt stopped. */
  reason?: string;
}

export interface PullOptions {
  repo: string;
  revision?: string;
  outDir: string;
  endpoint?: string;
  /** Sent as `Authorization: Bearer` (HF_TOKEN). */
  token?: string;
  onProgress?: (p: PullProgress) => void;
  /** Attempts per file after a dropped connection (default 5). */
  attempts?: number;
  /** Wait before retry n is n × this (default 1000 ms). */
  retryDelayMs?: number;
  fetch?: typeof fetch;
}

export interface PullResult {
  dir: string;
  commit: string;
  files: HubFile[];
}

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

export function isRepoId(s: string): boolean {
  return REPO_RE.test(s) && !s.includes('..');
}

/** The files `pull` fetches from a listing: top-level config, safetensors and tokenizer files. */
export function selectFiles(files: readonly HubFile[]): HubFile[] {
  return files.filter(
    (f) => !f.path.includes('/') && (WANTED.has(f.path) || f.path.endsWith('.safetensors')),
  );
}

function parseListing(body: unknown, repo: string): { commit: string; files: HubFile[] } {
  const bad = (why: string): never => {
    throw new PullError(`the Hub's file list for ${repo} is malformed: ${why}`);
  };
  if (typeof body !== 'object' || body === null) bad('not an object');
  const b = body as { sha?: unknown; siblings?: unknown };
  if (typeof b.sha !== 'string' || !/^[0-9a-f]{40}$/.test(b.sha)) bad('no commit sha');
  if (!Array.isArray(b.siblings)) bad('no siblings');
  const files = (b.siblings as unknown[]).map((s): HubFile => {
    const f = s as {
      rfilename?: unknown;
      size?: unknown;
      blobId?: unknown;
      lfs?: { sha256?: unknown; size?: unknown };
    };
    if (typeof f.rfilename !== 'string') bad('a sibling without rfilename');
    const path = f.rfilename as string;
    // Paths come from the server: never let one climb out of the output directory.
    if (path.startsWith('/') || path.split('/').some((p) => p === '..' || p === '' || p === '.'))
      bad(`unsafe file name ${JSON.stringify(path)}`);
    const lfsSha = f.lfs?.sha256;
    const size = typeof f.lfs?.size === 'number' ? f.lfs.size : typeof f.size === 'number' ? f.size : null;
    return {
      path,
      size,
      sha256: typeof lfsSha === 'string' && /^[0-9a-f]{64}$/.test(lfsSha) ? lfsSha : null,
      blobId:
        f.lfs === undefined && typeof f.blobId === 'string' && /^[0-9a-f]{40}$/.test(f.blobId)
          ? f.blobId
          : null,
    };
  });
  return { commit: b.sha as string, files };
}

function httpError(status: number, what: string, hasToken: boolean): PullError {
  if (status === 401 || status === 403) {
    return new PullError(
      `${what}: HTTP ${status} — the repository is gated or private${hasToken ? ' and HF_TOKEN does not grant access' : '; set HF_TOKEN'}`,
    );
  }
  if (status === 404) return new PullError(`${what}: HTTP 404 — no such repository, revision or file`);
  return new PullError(`${what}: HTTP ${status}`);
}

/** The hash a file is checked with, fed with its content. */
function checker(f: HubFile): { hash: Hash; expected: string; kind: string } | null {
  if (f.sha256) return { hash: createHash('sha256'), expected: f.sha256, kind: 'sha256' };
  if (f.blobId && f.size !== null) {
    const hash = createHash('sha1');
    hash.update(`blob ${f.size}\0`);
    return { hash, expected: f.blobId, kind: 'git blob id' };
  }
  return null;
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

export async function pullModel(opts: PullOptions): Promise<PullResult> {
  if (!isRepoId(opts.repo))
    throw new PullError(`${JSON.stringify(opts.repo)} is not a repository id (OWNER/NAME)`);
  const endpoint = (opts.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const revision = opts.revision ?? 'main';
  const doFetch = opts.fetch ?? fetch;
  const headers: Record<string, string> = { 'user-agent': 'deltagate-pull' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const progress = opts.onProgress ?? (() => undefined);

  const listUrl = `${endpoint}/api/models/${opts.repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  let res: Response;
  try {
    res = await doFetch(listUrl, { headers });
  } catch (cause) {
    throw new PullError(`cannot reach ${endpoint}: ${(cause as Error).message}`, { cause });
  }
  if (!res.ok) throw httpError(res.status, `${opts.repo}@${revision}`, opts.token !== undefined);
  let body: unknown;
  try {
    body = await res.json();
  } catch (cause) {
    throw new PullError(`the Hub's file list for ${opts.repo} is not JSON`, { cause });
  }
  const { commit, files: all } = parseListing(body, opts.repo);
  const files = selectFiles(all);
  if (!files.some((f) => f.path === 'config.json')) throw new PullError(`${opts.repo} has no config.json`);
  if (!files.some((f) => f.path.endsWith('.safetensors'))) {
    throw new PullError(
      `${opts.repo} has no .safetensors weights${all.some((f) => f.path.endsWith('.bin')) ? ' (only pickle .bin files, which deltagate never loads)' : ''}`,
    );
  }
  const dir = resolve(opts.outDir);
  await mkdir(dir, { recursive: true });
  for (const f of files) {
    const url = `${endpoint}/${opts.repo}/resolve/${commit}/${f.path.split('/').map(encodeURIComponent).join('/')}`;
    await downloadFile(f, url, join(dir, f.path), { ...opts, headers, doFetch, progress });
  }
  return { dir, commit, files };
}

interface FileContext {
  headers: Record<string, string>;
  doFetch: typeof fetch;
  progress: (p: PullProgress) => void;
  attempts?: number;
  retryDelayMs?: number;
  token?: string;
}

async function downloadFile(f: HubFile, url: string, dest: string, ctx: FileContext): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  // Already here and matching (a rerun after an interrupted pull): keep it.
  if ((await sizeOf(dest)) === f.size && f.size !== null) {
    const check = checker(f);
    if (check) await hashFile(dest, check.hash);
    if (!check || check.hash.digest('hex') === check.expected) {
      ctx.progress({ file: f.path, done: f.size, total: f.size, event: 'skipped' });
      return;
    }
  }
  const part = `${dest}.part`;
  const attempts = ctx.attempts ?? 5;
  const delay = ctx.retryDelayMs ?? 1000;
  let done = (await sizeOf(part)) ?? 0;
  if (f.size !== null && done > f.size) {
    await rm(part, { force: true });
    done = 0;
  }
  ctx.progress({ file: f.path, done, total: f.size, event: 'start' });
  for (let attempt = 1; ; attempt++) {
    try {
      if (f.size === null || done < f.size) done = await fetchInto(f, url, part, done, ctx);
      break;
    } catch (e) {
      if (e instanceof PullError || attempt >= attempts) {
        if (e instanceof PullError) throw e;
        throw new PullError(
          `${f.path}: the download stopped ${attempt} times (${(e as Error).message}); rerun to resume from byte ${(await sizeOf(part)) ?? 0}`,
          { cause: e },
        );
      }
      done = (await sizeOf(part)) ?? 0;
      ctx.progress({ file: f.path, done, total: f.size, event: 'retry', reason: (e as Error).message });
      await new Promise((r) => setTimeout(r, delay * attempt));
    }
  }
  if (f.size !== null && done !== f.size) {
    await rm(part, { force: true });
    throw new PullError(`${f.path}: got ${done} bytes, the Hub lists ${f.size}`);
  }
  const check = checker(f);
  if (check) {
    await hashFile(part, check.hash);
    const got = check.hash.digest('hex');
    if (got !== check.expected) {
      await rm(part, { force: true });
      throw new PullError(
        `${f.path}: ${check.kind} ${got} does not match the Hub's ${check.expected}; refused`,
      );
    }
  }
  await rename(part, dest);
  ctx.progress({ file: f.path, done, total: f.size, event: 'verified' });
}

/** One GET from byte `from` (a Range request when > 0), appended to `part`; returns the bytes now there. */
async function fetchInto(
  f: HubFile,
  url: string,
  part: string,
  from: number,
  ctx: FileContext,
): Promise<number> {
  const headers = { ...ctx.headers, ...(from > 0 ? { range: `bytes=${from}-` } : {}) };
  const res = await ctx.doFetch(url, { headers });
  if (res.status === 416 && f.size !== null && from === f.size) return from;
  if (!res.ok) throw httpError(res.status, f.path, ctx.token !== undefined);
  if (!res.body) throw new PullError(`${f.path}: empty response`);
  let done = from;
  if (from > 0 && res.status !== 206) done = 0; // the server ignored the range: start over
  const fh = await open(part, done === 0 ? 'w' : 'a');
  try {
    let last = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (f.size !== null && done + chunk.length > f.size)
        throw new PullError(`${f.path}: the server sent more than the ${f.size} bytes the Hub lists`);
      await fh.write(chunk);
      done += chunk.length;
      const now = Date.now();
      if (now - last >= 250) {
        last = now;
        ctx.progress({ file: f.path, done, total: f.size, event: 'data' });
      }
    }
  } finally {
    await fh.close();
  }
  if (f.size !== null && done < f.size) throw new Error(`connection closed at byte ${done} of ${f.size}`);
  return done;
}
