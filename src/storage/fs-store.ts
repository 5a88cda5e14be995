/**
 * `FsBlobStore`: the embedded default, a directory that behaves like the S3 store. Writes go to a temp file in
 * the same file system, fsynced, then `rename` (overwrite) or `link` (create-only, atomic: EEXIST → conflict),
 * so readers never see half an object. Presigned URLs point at the deltagate server itself (`blob-http.ts`
 * serves them): HMAC-SHA256 over method, key, expiry and the signed size/type/checksum, with a key kept in
 * the directory. Opening the store removes stale temp files a killed process left (`STALE_TMP_MS`).
 * Not the HTTP handler (`blob-http.ts`) nor the S3 store (`s3-store.ts`).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  link,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { NotFoundError } from '../shared/errors.js';
import {
  BlobExistsError,
  ChecksumMismatchError,
  InvalidBlobKeyError,
  assertContentLength,
  assertPresignSeconds,
  assertSha256Hex,
  type BlobStore,
  type PresignPutOptions,
  type PresignedGet,
  type PresignedPut,
  type PutOptions,
  type PutResult,
} from './blob-store.js';
import { assertValidKey, assertValidPrefix } from './keys.js';

export interface FsBlobStoreOptions {
  dir: string;
  /** Base URL of the deltagate server (no trailing slash); presigned URLs are `${publicUrl}/blobs/<key>?…`. */
  publicUrl: string;
  /** HMAC key for presigned URLs; default: `<dir>/signing-key`, created on first open (0600). */
  signingKey?: Uint8Array;
  /** Injectable clock (ms since epoch), for expiry tests. */
  now?: () => number;
}

/** What a presigned URL grants, once its signature checks out. */
export interface BlobGrant {
  method: 'PUT' | 'GET';
  key: string;
  expiresAt: number;
  contentLength?: number;
  contentType?: string;
  sha256?: string;
}

export class PresignedUrlError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 403,
  ) {
    super(message);
    this.name = 'PresignedUrlError';
  }
}

export const BLOB_HTTP_PREFIX = '/blobs/';
const OBJECTS = 'objects';
const TMP = '.tmp';

/**
 * A temp file untouched this long belongs to no live write and is removed when a store opens. Not "all of
 * them": several processes may share the directory (the API and a worker on one host, a restart while the
 * old process drains), and a live write touches its file with every chunk — an upload stalls out at the
 * HTTP request timeout (2 min) long before this.
 */
export const STALE_TMP_MS = 10 * 60_000;

function isErrno(e: unknown, ...codes: string[]): boolean {
  return typeof e === 'object' && e !== null && codes.includes((e as { code?: string }).code ?? '');
}

/** Deletes the files in `tmp` last modified before `before` (ms since epoch); races with other processes are fine. */
async function removeStaleTempFiles(tmp: string, before: number): Promise<void> {
  for (const name of await readdir(tmp)) {
    const file = join(tmp, name);
    try {
      const s = await stat(file);
      if (s.isFile() && s.mtimeMs < before) await unlink(file);
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e; // another process finished or removed it meanwhile
    }
  }
}

export class FsBlobStore implements BlobStore {
  readonly kind = 'fs' as const;
  readonly dir: string;
  readonly publicUrl: string;
  private readonly objects: string;
  private readonly tmp: string;
  private readonly now: () => number;

  private constructor(
    options: FsBlobStoreOptions,
    private readonly signingKey: Uint8Array,
  ) {
    this.dir = options.dir;
    this.publicUrl = options.publicUrl.replace(/\/+$/, '');
    this.objects = join(options.dir, OBJECTS);
    this.tmp = join(options.dir, TMP);
    this.now = options.now ?? Date.now;
  }

  static async open(options: FsBlobStoreOptions): Promise<FsBlobStore> {
    await mkdir(join(options.dir, OBJECTS), { recursive: true });
    await mkdir(join(options.dir, TMP), { recursive: true });
    await removeStaleTempFiles(join(options.dir, TMP), Date.now() - STALE_TMP_MS);
    let key = options.signingKey;
    if (key === undefined) {
      const file = join(options.dir, 'signing-key');
      try {
        await writeFile(file, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
      } catch (e) {
        if (!isErrno(e, 'EEXIST')) throw e;
      }
      key = Buffer.from((await readFile(file, 'utf8')).trim(), 'hex');
      if (key.length < 32) throw new Error(`signing key in ${file} is too short; delete it to regenerate`);
    }
    return new FsBlobStore(options, key);
  }

  private path(key: string): string {
    assertValidKey(key);
    return join(this.objects, ...key.split('/'));
  }

  async put(key: string, body: Uint8Array, opts: PutOptions = {}): Promise<PutResult> {
    return this.putStream(key, [body], opts);
  }

  async putStream(
    key: string,
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    opts: PutOptions = {},
  ) {
    const final = this.path(key);
    if (opts.sha256 !== undefined) assertSha256Hex(opts.sha256);
    const tmp = join(this.tmp, `${randomBytes(12).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      try {
        for await (const chunk of body) {
          hash.update(chunk);
          size += chunk.byteLength;
          await fh.write(chunk);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      const sha256 = hash.digest('hex');
      if (opts.sha256 !== undefined && opts.sha256 !== sha256)
        throw new ChecksumMismatchError(key, opts.sha256, sha256);
      await this.publish(tmp, final, key, opts.ifNoneMatch === true);
      return { key, size, sha256 };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Moves the finished temp file into place; retries when a concurrent deletePrefix removed the parent. */
  private async publish(tmp: string, final: string, key: string, createOnly: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(final), { recursive: true });
      try {
        if (createOnly) await link(tmp, final);
        else await rename(tmp, final);
        return;
      } catch (e) {
        if (isErrno(e, 'EEXIST')) throw new BlobExistsError(key);
        if (isErrno(e, 'EISDIR', 'ENOTDIR', 'ENOTEMPTY')) {
          throw new BlobExistsError(key); // a key that is also a prefix: never written by the key layout
        }
        if (!isErrno(e, 'ENOENT') || attempt >= 3) throw e;
      }
    }
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return await readFile(this.path(key));
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'EISDIR', 'ENOTDIR')) throw new NotFoundError('object', key);
      throw e;
    }
  }

  async stream(key: string): Promise<NodeJS.ReadableStream> {
    const p = this.path(key);
    try {
      const fh = await open(p, 'r');
      if (!(await fh.stat()).isFile()) {
        await fh.close();
        throw new NotFoundError('object', key);
      }
      return fh.createReadStream();
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'EISDIR', 'ENOTDIR')) throw new NotFoundError('object', key);
      throw e;
    }
  }

  async head(key: string): Promise<{ size: number; etag?: string } | null> {
    try {
      const s = await stat(this.path(key));
      if (!s.isFile()) return null;
      return { size: s.size, etag: `"${Math.floor(s.mtimeMs).toString(16)}-${s.size.toString(16)}"` };
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return null;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.path(key);
    try {
      await unlink(p);
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
      if (isErrno(e, 'EISDIR', 'EPERM')) return; // a prefix, not an object
      throw e;
    }
    await this.pruneEmptyParents(p);
  }

  /** Removes now-empty directories up to (not including) the objects root, so listings stay cheap. */
  private async pruneEmptyParents(file: string): Promise<void> {
    let d = dirname(file);
    while (d.startsWith(this.objects + sep)) {
      try {
        await rmdir(d);
      } catch {
        return; // not empty, or already gone: either way stop
      }
      d = dirname(d);
    }
  }

  async list(prefix: string): Promise<{ key: string; size: number }[]> {
    // Any string prefix, like S3; walk the deepest directory it names, then filter.
    const cut = prefix.lastIndexOf('/');
    const dirPart = cut === -1 ? '' : prefix.slice(0, cut + 1);
    if (prefix === '' || prefix.endsWith('/')) assertValidPrefix(prefix);
    else assertValidKey(prefix);
    const root = dirPart === '' ? this.objects : join(this.objects, ...dirPart.slice(0, -1).split('/'));
    const out: { key: string; size: number }[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
        throw e;
      }
      for (const ent of entries) {
        const k = keyPrefix + ent.name;
        if (ent.isDirectory()) {
          if ((k + '/').startsWith(prefix) || prefix.startsWith(k + '/'))
            await walk(join(dir, ent.name), k + '/');
        } else if (ent.isFile() && k.startsWith(prefix)) {
          try {
            out.push({ key: k, size: (await stat(join(dir, ent.name))).size });
          } catch (e) {
            if (!isErrno(e, 'ENOENT')) throw e; // deleted meanwhile
          }
        }
      }
    };
    await walk(root, dirPart);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async deletePrefix(prefix: string): Promise<number> {
    if (prefix === '') throw new InvalidBlobKeyError(prefix, 'deletePrefix needs a non-empty prefix');
    assertValidPrefix(prefix);
    const objects = await this.list(prefix);
    for (const o of objects) await this.delete(o.key);
    return objects.length;
  }

  // ---- presigned URLs -------------------------------------------------------------------------------------

  private sign(g: BlobGrant): string {
    const canonical = [
      'deltagate-blob-v1',
      g.method,
      g.key,
      String(g.expiresAt),
      g.contentLength === undefined ? '' : String(g.contentLength),
      g.contentType ?? '',
      g.sha256 ?? '',
    ].join('\n');
    return createHmac('sha256', this.signingKey).update(canonical).digest('base64url');
  }

  private url(g: BlobGrant): string {
    const q = new URLSearchParams({ m: g.method, exp: String(g.expiresAt) });
    if (g.contentLength !== undefined) q.set('len', String(g.contentLength));
    if (g.contentType !== undefined) q.set('ct', g.contentType);
    if (g.sha256 !== undefined) q.set('sha256', g.sha256);
    q.set('sig', this.sign(g));
    return `${this.publicUrl}${BLOB_HTTP_PREFIX}${g.key.split('/').map(encodeURIComponent).join('/')}?${q}`;
  }

  async presignPut(key: string, opts: PresignPutOptions): Promise<PresignedPut> {
    assertValidKey(key);
    assertPresignSeconds(opts.expiresInSeconds);
    assertContentLength(opts.contentLength);
    if (opts.sha256 !== undefined) assertSha256Hex(opts.sha256);
    const expiresAt = Math.floor(this.now() / 1000) + opts.expiresInSeconds;
    const grant: BlobGrant = { method: 'PUT', key, expiresAt, contentLength: opts.contentLength };
    const headers: Record<string, string> = {};
    if (opts.contentType !== undefined) {
      grant.contentType = opts.contentType;
      headers['content-type'] = opts.contentType;
    }
    if (opts.sha256 !== undefined) {
      grant.sha256 = opts.sha256;
      headers['x-amz-checksum-sha256'] = Buffer.from(opts.sha256, 'hex').toString('base64');
    }
    return { url: this.url(grant), headers, expiresAt: new Date(expiresAt * 1000) };
  }

  async presignGet(key: string, opts: { expiresInSeconds: number }): Promise<PresignedGet> {
    assertValidKey(key);
    assertPresignSeconds(opts.expiresInSeconds);
    const expiresAt = Math.floor(this.now() / 1000) + opts.expiresInSeconds;
    return { url: this.url({ method: 'GET', key, expiresAt }), expiresAt: new Date(expiresAt * 1000) };
  }

  /**
   * Checks a request against its presigned URL: `pathname` is the URL path (percent-encoded, starting with
   * `/blobs/`), `query` its search params. Returns the grant or throws PresignedUrlError (403 for a bad,
   * expired or misused signature; 400 for a malformed URL).
   */
  verifyPresigned(method: string, pathname: string, query: URLSearchParams): BlobGrant {
    if (!pathname.startsWith(BLOB_HTTP_PREFIX)) throw new PresignedUrlError('not a blob URL', 400);
    let key: string;
    try {
      key = pathname.slice(BLOB_HTTP_PREFIX.length).split('/').map(decodeURIComponent).join('/');
      assertValidKey(key);
    } catch {
      throw new PresignedUrlError('invalid object key', 400);
    }
    const m = query.get('m');
    const exp = Number(query.get('exp'));
    const sig = query.get('sig');
    if ((m !== 'PUT' && m !== 'GET') || !Number.isSafeInteger(exp) || sig === null) {
      throw new PresignedUrlError('missing or malformed signature parameters', 403);
    }
    const grant: BlobGrant = { method: m, key, expiresAt: exp };
    const len = query.get('len');
    if (len !== null) grant.contentLength = Number(len);
    const ct = query.get('ct');
    if (ct !== null) grant.contentType = ct;
    const sha = query.get('sha256');
    if (sha !== null) grant.sha256 = sha;
    const expected = Buffer.from(this.sign(grant));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new PresignedUrlError('signature does not match', 403);
    }
    // After the signature: a valid URL used with another method is still refused.
    const asked = method === 'HEAD' ? 'GET' : method;
    if (asked !== m) throw new PresignedUrlError(`this URL is signed for ${m}, not ${method}`, 403);
    if (Math.floor(this.now() / 1000) > exp) throw new PresignedUrlError('presigned URL expired', 403);
    return grant;
  }
}
