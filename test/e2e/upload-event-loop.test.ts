// Hardening: one dataset upload must not stall every other tenant. A 4 MiB inline `uploadDataset` used to hold
// the event loop 12-15 s (superlinear: 1 MB 2.6 s, 2 MB 6.4 s), and /healthz waited as long. Now validation,
// hashing and token counting run in slices that yield to the event loop, and cost linear time; the same holds
// for `completeDatasetUpload` of a presigned upload. Measured in the server's own process (the harness runs
// it in-process): the event loop's longest stall while the upload runs (wall clock, and the part of it this
// process spent computing, so another process hogging the shared CPU does not count), /healthz's latency,
// and the CPU time of the request (linear in the size).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, gql, ok, startHarness, type Harness } from './harness.js';

const MiB = 1024 * 1024;
const WORDS = ['alpha', 'beta', 'gamma', 'Δέλτα', 'naïve', '中文', 'emoji 😀', 'tabs\tand', 'quote"s', 'x'];

/** A PROMPT_COMPLETION JSONL file of about `bytes` bytes, and the byte-level token count of its fields. */
function dataset(bytes: number, seed: number): { text: string; tokens: number; rows: number } {
  const lines: string[] = [];
  let size = 0;
  let tokens = 0;
  let s = seed;
  const word = () => WORDS[(s = (s * 1103515245 + 12345) % 2 ** 31) % WORDS.length]!;
  for (let i = 0; ; i++) {
    const prompt = `Q${i}: ${Array.from({ length: 8 + (i % 13) }, word).join(' ')}?`;
    const completion = ` ${Array.from({ length: 4 + (i % 29) }, word).join(' ')}.`;
    const line = JSON.stringify({ prompt, completion });
    if (size + Buffer.byteLength(line) + 1 > bytes) break;
    lines.push(line);
    size += Buffer.byteLength(line) + 1;
    tokens += Buffer.byteLength(prompt) + Buffer.byteLength(completion); // built-in tokenizer: one per byte
  }
  return { text: lines.join('\n') + '\n', tokens, rows: lines.length };
}

describe('dataset uploads never block the event loop', () => {
  let h: Harness;
  let key = '';

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', {}, { runWorker: false });
    key = (await ok(h, ADMIN_KEY, 'mutation { createCustomer(input: { name: "big" }) { secret } }'))
      .createCustomer.secret;
  });
  afterAll(async () => h?.close());

  interface Measured<T> {
    value: T;
    /** Wall-clock time of the request. */
    ms: number;
    /** CPU time the process spent meanwhile (the work, not the waiting). */
    cpuMs: number;
    /** The event loop's longest stall, wall clock (includes time the OS gave the CPU to someone else). */
    maxDelayMs: number;
    /** The longest stall the process spent computing: per tick gap, min(wall, process CPU). */
    maxBlockMs: number;
    healthMaxMs: number;
    healthChecks: number;
    healthErrors: number;
  }

  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };

  /**
   * Runs `work` while a 2 ms timer watches the event loop: a late tick is a stall. On a shared machine a
   * stall can also be the OS running another process, so each gap is also measured in this process's CPU
   * time: min(wall, CPU) is the part the server itself spent blocking. /healthz is polled meanwhile.
   */
  async function measured<T>(work: () => Promise<T>): Promise<Measured<T>> {
    let stop = false;
    let healthMaxMs = 0;
    let healthChecks = 0;
    let healthErrors = 0;
    const poll = (async () => {
      while (!stop) {
        const t = performance.now();
        try {
          await (await fetch(`${h.server.url}/healthz`)).json();
          healthChecks++;
        } catch {
          healthErrors++; // e.g. the connection reset by a server that could not answer in time
        }
        healthMaxMs = Math.max(healthMaxMs, performance.now() - t);
        await sleep(2);
      }
    })();
    let maxDelayMs = 0;
    let maxBlockMs = 0;
    let lastWall = performance.now();
    let lastCpu = cpuNow();
    const tick = () => {
      const wall = performance.now();
      const cpu = cpuNow();
      maxDelayMs = Math.max(maxDelayMs, wall - lastWall);
      maxBlockMs = Math.max(maxBlockMs, Math.min(wall - lastWall, cpu - lastCpu));
      lastWall = wall;
      lastCpu = cpu;
    };
    const timer = setInterval(tick, 2);
    const t0 = performance.now();
    const c0 = cpuNow();
    const value = await work();
    const ms = performance.now() - t0;
    const cpuMs = cpuNow() - c0;
    tick();
    clearInterval(timer);
    stop = true;
    await poll;
    return { value, ms, cpuMs, maxDelayMs, maxBlockMs, healthMaxMs, healthChecks, healthErrors };
  }

  /** The request body is encoded before the clock starts: the client's work is not the server's. */
  const uploadRequest = (content: string) => {
    const body = Buffer.from(
      JSON.stringify({
        query:
          'mutation($i: UploadDatasetInput!) { uploadDataset(input: $i) { status rowCount tokenCount sizeBytes errors { line message } } }',
        variables: { i: { name: 'big', format: 'PROMPT_COMPLETION', content } },
      }),
    );
    return async () => {
      const res = await fetch(h.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body,
      });
      return (await res.json()) as { data?: unknown; errors?: unknown };
    };
  };
  const upload = (content: string) => uploadRequest(content)();

  /**
   * The best of up to `attempts` measurements: the machine is shared (other test files, other engineers), and
   * contention only ever adds delay, so the best run is the closest to what the request itself costs. The
   * code this guards blocked for seconds on every run.
   */
  async function best<T>(attempts: number, run: () => Promise<Measured<T>>) {
    const all: Measured<T>[] = [];
    for (let i = 0; i < attempts; i++) {
      all.push(await run());
      if (all.at(-1)!.maxDelayMs < 100) break;
    }
    return all.reduce((a, b) => (b.maxBlockMs < a.maxBlockMs ? b : a));
  }

  const summary = (m: Measured<unknown>) => ({
    ms: Math.round(m.ms),
    cpuMs: Math.round(m.cpuMs),
    maxBlockMs: Math.round(m.maxBlockMs),
    maxDelayMs: Math.round(m.maxDelayMs),
    healthMaxMs: Math.round(m.healthMaxMs),
    healthChecks: m.healthChecks,
    healthErrors: m.healthErrors,
  });

  it('a 4 MiB inline upload: no stall over 100 ms, linear and well under 2 s of work', async () => {
    const one = dataset(MiB, 1);
    const four = dataset(4 * MiB, 2);
    await upload(dataset(64 * 1024, 3).text); // warm-up (JIT, SQL statement cache)

    const send1 = uploadRequest(one.text);
    const send4 = uploadRequest(four.text);
    const r1 = await best(3, () => measured(send1));
    expect(r1.value.data).toEqual({
      uploadDataset: {
        status: 'READY',
        rowCount: one.rows,
        tokenCount: one.tokens,
        sizeBytes: Buffer.byteLength(one.text),
        errors: [],
      },
    });
    const r4 = await best(3, () => measured(send4));
    expect(r4.value.data).toEqual({
      uploadDataset: {
        status: 'READY',
        rowCount: four.rows,
        tokenCount: four.tokens,
        sizeBytes: Buffer.byteLength(four.text),
        errors: [],
      },
    });
    const report = JSON.stringify({ oneMiB: summary(r1), fourMiB: summary(r4) });
    expect(r4.maxBlockMs, report).toBeLessThan(100);
    // Wall clock, with room for a busy machine (the unsliced code stalled 8-15 s here).
    expect(r4.maxDelayMs, report).toBeLessThan(1000);
    expect(r4.healthMaxMs, report).toBeLessThan(1000);
    expect(r4.healthChecks, report).toBeGreaterThan(3);
    expect(r4.healthErrors, report).toBe(0);
    // Linear work: four times the bytes, at most about four times the CPU (plus fixed costs); under 2 s.
    expect(r4.cpuMs, report).toBeLessThan(2000);
    expect(r4.cpuMs, report).toBeLessThan(5 * r1.cpuMs + 300);
  }, 180_000);

  it('completeDatasetUpload of a 24 MiB presigned upload: no stall over 100 ms either', async () => {
    const big = dataset(24 * MiB, 4);
    const body = Buffer.from(big.text);
    const complete = async () => {
      const t = (
        await ok(
          h,
          key,
          'mutation($i: CreateDatasetUploadInput!) { createDatasetUpload(input: $i) { dataset { id } url headers } }',
          { i: { name: 'huge', format: 'PROMPT_COMPLETION', sizeBytes: body.byteLength } },
        )
      ).createDatasetUpload;
      const put = await fetch(t.url, { method: 'PUT', headers: t.headers, body });
      expect(put.status).toBeLessThan(300);
      return measured(() =>
        gql(h, key, 'mutation($id: ID!) { completeDatasetUpload(id: $id) { status rowCount tokenCount } }', {
          id: t.dataset.id,
        }),
      );
    };
    const r = await best(2, complete);
    expect(r.value.data).toEqual({
      completeDatasetUpload: { status: 'READY', rowCount: big.rows, tokenCount: big.tokens },
    });
    const report = JSON.stringify(summary(r));
    expect(r.maxBlockMs, report).toBeLessThan(100);
    expect(r.maxDelayMs, report).toBeLessThan(1000);
    expect(r.healthMaxMs, report).toBeLessThan(1000);
    expect(r.healthErrors, report).toBe(0);
    expect(r.cpuMs, report).toBeLessThan(8000);
  }, 600_000);
});
