/**
 * `deltagate pull`'s client (src/hub/hf-pull.ts) against a local server that serves the Hub's URL layout
 * (`/api/models/{repo}/revision/{rev}`, `/{repo}/resolve/{commit}/{file}` with Range): the right files, a
 * connection dropped mid-file resumed with a Range request, a `.part` left by an earlier run resumed, LFS
 * SHA-256 and git blob ids checked (a wrong hash refused, nothing left), HF_TOKEN sent as a bearer token.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PullError, pullModel, type PullProgress } from '../../src/hub/hf-pull.js';

const COMMIT = 'c0ffee'.padEnd(40, '0');
const WEIGHTS = randomBytes(300_000);
const CONFIG = Buffer.from(JSON.stringify({ model_type: 'llama' }));
const TOKENIZER = Buffer.from('{"model":{}}');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const blobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

interface Seen {
  path: string;
  range?: string;
  auth?: string;
}

let server: Server;
let endpoint: string;
let dir: string;
const seen: Seen[] = [];
/** Requests for model.safetensors that the server still cuts off after half the body. */
let dropsLeft = 0;

function listing(repo: string) {
  const lfsSha = repo === 'acme/bad' ? sha256(Buffer.from('something else')) : sha256(WEIGHTS);
  return {
    id: repo,
    sha: COMMIT,
    siblings: [
      { rfilename: 'config.json', size: CONFIG.length, blobId: blobId(CONFIG) },
      { rfilename: 'tokenizer.json', size: TOKENIZER.length, blobId: blobId(TOKENIZER) },
      {
        rfilename: 'model.safetensors',
        size: WEIGHTS.length,
        blobId: 'f'.repeat(40),
        lfs: { sha256: lfsSha, size: WEIGHTS.length, pointerSize: 134 },
      },
      { rfilename: 'pytorch_model.bin', size: 10, lfs: { sha256: '0'.repeat(64), size: 10 } },
      { rfilename: 'onnx/model.safetensors', size: 10, lfs: { sha256: '0'.repeat(64), size: 10 } },
      { rfilename: 'README.md', size: 5, blobId: '0'.repeat(40) },
    ],
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dg-pull-'));
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    seen.push({ path: url.pathname, range: req.headers.range, auth: req.headers.authorization });
    const api = /^\/api\/models\/(acme\/(?:tiny|bad))\/revision\/main$/.exec(url.pathname);
    if (api && url.searchParams.get('blobs') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(listing(api[1]!)));
      return;
    }
    const file = new RegExp(`^/acme/(?:tiny|bad)/resolve/${COMMIT}/(.+)$`).exec(url.pathname)?.[1];
    const body =
      file === 'config.json'
        ? CONFIG
        : file === 'tokenizer.json'
          ? TOKENIZER
          : file === 'model.safetensors'
            ? WEIGHTS
            : null;
    if (body === null) {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    const part = body.subarray(from);
    res.writeHead(m ? 206 : 200, {
      'content-length': part.length,
      ...(m ? { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}),
    });
    if (file === 'model.safetensors' && dropsLeft > 0) {
      dropsLeft--;
      res.write(part.subarray(0, Math.floor(part.length / 2)), () => res.socket?.destroy());
      return;
    }
    res.end(part);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('pull from a Hub-layout server', () => {
  it('fetches config, tokenizer and safetensors (no .bin, nothing in subfolders), resuming a dropped connection', async () => {
    seen.length = 0;
    dropsLeft = 1;
    const events: PullProgress[] = [];
    const out = join(dir, 'tiny');
    const r = await pullModel({
      repo: 'acme/tiny',
      outDir: out,
      endpoint,
      token: 'hf_secret',
      retryDelayMs: 1,
      onProgress: (p) => events.push(p),
    });
    expect(r.commit).toBe(COMMIT);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(Buffer.compare(await readFile(join(out, 'model.safetensors')), WEIGHTS)).toBe(0);
    const weights = seen.filter((s) => s.path.endsWith('/model.safetensors'));
    expect(weights).toHaveLength(2);
    expect(weights[0]!.range).toBeUndefined();
    // The resume starts where the client's data stopped (at most the half the server sent before it hung up).
    const from = Number(/^bytes=(\d+)-$/.exec(weights[1]!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(WEIGHTS.length / 2);
    expect(seen.every((s) => s.auth === 'Bearer hf_secret')).toBe(true);
    expect(seen[0]!.path).toBe('/api/models/acme/tiny/revision/main');
    expect(events.filter((e) => e.file === 'model.safetensors').map((e) => e.event)).toEqual(
      expect.arrayContaining(['start', 'retry', 'verified']),
    );
  });

  it('a rerun keeps verified files and resumes a .part left by an interrupted run', async () => {
    const out = join(dir, 'tiny');
    await rm(join(out, 'model.safetensors'));
    await writeFile(join(out, 'model.safetensors.part'), WEIGHTS.subarray(0, 123_456));
    seen.length = 0;
    const events: PullProgress[] = [];
    await pullModel({
      repo: 'acme/tiny',
      outDir: out,
      endpoint,
      attempts: 1,
      onProgress: (p) => events.push(p),
    });
    expect(seen.map((s) => [s.path.split('/').pop(), s.range])).toEqual([
      ['main', undefined],
      ['model.safetensors', 'bytes=123456-'],
    ]);
    expect(events.filter((e) => e.event === 'skipped').map((e) => e.file)).toEqual([
      'config.json',
      'tokenizer.json',
    ]);
    expect(Buffer.compare(await readFile(join(out, 'model.safetensors')), WEIGHTS)).toBe(0);
    expect(seen.every((s) => s.auth === undefined)).toBe(true);
  });

  it('a file whose SHA-256 does not match the Hub’s is refused and removed', async () => {
    const out = join(dir, 'bad');
    const err = await pullModel({ repo: 'acme/bad', outDir: out, endpoint }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PullError);
    expect((err as Error).message).toBe(
      `model.safetensors: sha256 ${createHash('sha256').update(WEIGHTS).digest('hex')} does not match the Hub's ${createHash('sha256').update('something else').digest('hex')}; refused`,
    );
    expect((await readdir(out)).sort()).toEqual(['config.json', 'tokenizer.json']);
  });

  it('an unknown repository is a 404 saying so; a bad repository id is refused before any request', async () => {
    await expect(pullModel({ repo: 'acme/nope', outDir: join(dir, 'nope'), endpoint })).rejects.toThrow(
      'acme/nope@main: HTTP 404 — no such repository, revision or file',
    );
    await expect(pullModel({ repo: '../etc', outDir: join(dir, 'x'), endpoint })).rejects.toThrow(
      '"../etc" is not a repository id (OWNER/NAME)',
    );
  });

  it('gives up after the attempts with a message saying how to resume', async () => {
    dropsLeft = 5;
    const err = await pullModel({
      repo: 'acme/tiny',
      outDir: join(dir, 'flaky'),
      endpoint,
      attempts: 2,
      retryDelayMs: 1,
    }).catch((e: unknown) => e);
    dropsLeft = 0;
    expect((err as Error).message).toMatch(
      /^model\.safetensors: the download stopped 2 times \(.*\); rerun to resume from byte \d+$/,
    );
    const again = await pullModel({ repo: 'acme/tiny', outDir: join(dir, 'flaky'), endpoint });
    expect(again.files.map((f) => f.path)).toEqual(['config.json', 'tokenizer.json', 'model.safetensors']);
    expect(Buffer.compare(await readFile(join(dir, 'flaky', 'model.safetensors')), WEIGHTS)).toBe(0);
  });
});
