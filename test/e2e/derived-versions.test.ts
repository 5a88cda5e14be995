// Derived versions and exports through GraphQL on embedded defaults (the real server, SQLite, the blob
// directory, the in-process queue): SHRINK of a rank-16 version whose products have rank 4 to rank 4 generates
// the source's greedy tokens; MERGE LINEAR / CAT / SVD equal the engine's mergeAdapters on the same files;
// progress arrives on trainingJobProgress up to SUCCEEDED; parents, weights and the report are readable;
// idempotency keys; cancel; every refusal before queuing; another tenant's ids are NOT_FOUND; a GGUF export
// downloads through its presigned URL, parses, and imported back generates what the merged source does; an
// HF export is a tar of the directory; deleting the exported version deletes the export and keeps the lineage;
// expired artifacts are swept.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { extract as tarExtract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importGguf } from '../../src/engine/convert/import-gguf.js';
import { mergeAdapters } from '../../src/engine/delta/merge.js';
import { BUILTIN_CONFIG, ensureBuiltinModel } from '../../src/engine/builtin-model.js';
import { bytesSource, parseGguf } from '../../src/engine/formats/gguf.js';
import { expectedTensors, parseModelConfig } from '../../src/engine/formats/hf-config.js';
import { parsePeftAdapter, serializePeftAdapter, type LoraAdapter } from '../../src/engine/formats/peft.js';
import { parseSafetensors, toFloat32 } from '../../src/engine/formats/safetensors.js';
import { Engine } from '../../src/inference/engine.js';
import { sweepExpiredArtifacts } from '../../src/services/export-artifacts.js';
import { exportPrefix } from '../../src/storage/keys.js';
import { lowTrueRankAdapter } from '../engine/delta/planted.js';
import { FACTS_JSONL, factsHyperparameters, waitFor } from './fixtures/facts.js';
import { collect, createCustomer } from './fixtures/gql-client.js';
import {
  codes,
  gql,
  makePeftAdapter,
  ok,
  startHarness,
  wsClient,
  type Harness,
  type Loose,
} from './harness.js';

const BASE = parseModelConfig(BUILTIN_CONFIG);

const IMPORT = `mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { id version rank } }`;
const JOB = `id kind status error attempts spec startedAt finishedAt progress { step totalSteps }
  resultVersion { id version rank alpha targetModules downloadUrl
    parents { versionId weight version { id version } }
    derivation { operation method rank energy report } trainingJob { id kind } }
  artifact { fileName format quantize sizeBytes sha256 createdAt expiresAt downloadUrl }`;
const DERIVE = `mutation($input: DeriveAdapterVersionInput!) { deriveAdapterVersion(input: $input) { id kind status spec } }`;
const EXPORT = `mutation($input: ExportAdapterVersionInput!) { exportAdapterVersion(input: $input) { id kind status spec } }`;
const GET_JOB = `query($id: ID!) { trainingJob(id: $id) { ${JOB} } }`;
const PROGRESS = `subscription($id: ID!) { trainingJobProgress(id: $id) { jobId status step totalSteps etaSeconds message } }`;
const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { text adapterVersion { version } } }`;

function peftFiles(adapter: LoraAdapter) {
  const { adapterConfig, weights } = serializePeftAdapter(adapter);
  return { adapterConfig, weights, weightsBase64: Buffer.from(weights).toString('base64') };
}

describe('derived versions and exports over GraphQL', () => {
  let h: Harness;
  let A: { id: string; key: string };
  let B: { id: string; key: string };
  let builtinDir: string;
  const scratch = mkdtempSync(join(tmpdir(), 'dg-derived-'));
  const ids = { src: '', other: '', merged: '', twin: '', v1: '', o1: '', o2: '', o3: '', shrunk: '' };
  /** What was imported, to compute the expected results in-test. */
  const files: Record<string, ReturnType<typeof peftFiles>> = {};
  /** Measured job durations (ms, finishedAt − startedAt) and the test process's worst event-loop delay. */
  const measured: Record<string, number> = {};

  const jobOf = async (key: string, id: string) => (await ok(h, key, GET_JOB, { id })).trainingJob;
  const finished = (key: string, id: string) =>
    waitFor(
      `job ${id} to finish`,
      async () => {
        const j = await jobOf(key, id);
        return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.status) ? j : null;
      },
      60_000,
      50,
    );
  const run = async (mutation: string, input: Record<string, unknown>, key = A.key) => {
    const job = Object.values(await ok(h, key, mutation, { input }))[0] as Loose;
    const done = await finished(key, job.id);
    if (done.status !== 'SUCCEEDED') throw new Error(`job ${job.id} ${done.status}: ${done.error}`);
    return done;
  };
  const importVersion = async (adapterId: string, f: ReturnType<typeof peftFiles>, key = A.key) =>
    (
      await ok(h, key, IMPORT, {
        input: { adapterId, adapterConfig: f.adapterConfig, weightsBase64: f.weightsBase64 },
      })
    ).importAdapterVersion;
  const createAdapter = async (name: string, key = A.key, baseModelId = 'deltagate-tiny') =>
    (
      await ok(
        h,
        key,
        `mutation($name: String!, $base: ID!) { createAdapter(input: { name: $name, baseModelId: $base }) { id } }`,
        { name, base: baseModelId },
      )
    ).createAdapter.id as string;
  const download = async (url: string) => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    return new Uint8Array(await res.arrayBuffer());
  };

  beforeAll(async () => {
    // A second registered base model with the same shapes under another id: adapters of it are not mergeable.
    const twin = join(scratch, 'tiny-twin');
    cpSync(await ensureBuiltinModel(join(scratch, 'data')), twin, { recursive: true });
    h = await startHarness('sqlite+fs', { DELTAGATE_BASE_MODELS: twin });
    builtinDir = h.server.services.baseModels.get('deltagate-tiny')!.dir;
    A = await createCustomer(h, 'Acme', { maxConcurrentJobs: 3 });
    B = await createCustomer(h, 'Globex');
    ids.src = await createAdapter('src');
    ids.other = await createAdapter('other');
    ids.merged = await createAdapter('merged');
    ids.twin = await createAdapter('twin', A.key, 'tiny-twin');
    // rank 16 whose every product B·A has rank 4 (all seven modules), scale 2.
    files.v1 = peftFiles({ ...lowTrueRankAdapter(BASE, 16, 4, 11), baseModelName: 'deltagate-tiny' });
    ids.v1 = (await importVersion(ids.src, files.v1)).id;
    files.o1 = makePeftAdapter({ rank: 8, seed: 3, modules: ['q_proj', 'v_proj', 'down_proj'] });
    files.o2 = makePeftAdapter({ rank: 8, seed: 5, modules: ['q_proj', 'k_proj', 'v_proj'] });
    files.o3 = makePeftAdapter({ rank: 4, seed: 7, modules: ['q_proj', 'v_proj'] });
    ids.o1 = (await importVersion(ids.other, files.o1)).id;
    ids.o2 = (await importVersion(ids.other, files.o2)).id;
    ids.o3 = (await importVersion(ids.other, files.o3)).id;
  });
  afterAll(async () => {
    await h?.close();
    rmSync(scratch, { recursive: true, force: true });
    console.log(`derived-versions measurements (ms): ${JSON.stringify(measured)}`);
  });

  it('SHRINK rank 16 (true rank 4) → rank 4: progress to SUCCEEDED, lineage, identical greedy tokens', async () => {
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const job = (
      await ok(h, A.key, DERIVE, {
        input: { adapterId: ids.src, operation: 'SHRINK', sources: [{ versionId: ids.v1 }], rank: 4 },
      })
    ).deriveAdapterVersion;
    expect(job).toMatchObject({ kind: 'SHRINK', status: 'QUEUED' });
    expect(job.spec).toEqual({
      operation: 'SHRINK',
      sources: [{ versionId: ids.v1, weight: 1 }],
      method: null,
      rank: 4,
      energy: null,
    });
    const client = wsClient(h, `Bearer ${A.key}`);
    const progress = collect<Loose>(client, PROGRESS, { id: job.id });
    await progress.done;
    await client.dispose();
    loop.disable();
    measured.shrinkEventLoopMaxDelay = loop.max / 1e6;
    const events = progress.events.map((e) => e.data.trainingJobProgress);
    const steps = events.filter((e) => e.status === 'RUNNING' && e.step > 0);
    // 4 layers × 7 modules, one event each, in order (a late subscriber may miss the first few).
    expect(steps.map((e) => e.step)).toEqual(
      Array.from({ length: 28 }, (_, i) => i + 1).slice(28 - steps.length),
    );
    expect(steps.length).toBeGreaterThan(0);
    expect(
      steps.every((e) => e.totalSteps === 28 && /^model\.layers\.\d\.(self_attn|mlp)\./.test(e.message)),
    ).toBe(true);
    expect(events.at(-1)).toMatchObject({ jobId: job.id, status: 'SUCCEEDED', step: 28, totalSteps: 28 });
    expect(events.at(-1)!.message).toMatch(
      /^registered version 2 \(SHRINK to rank 4, dropped energy .*\); promote NEVER/,
    );

    const done = await jobOf(A.key, job.id);
    measured.shrink = Date.parse(done.finishedAt) - Date.parse(done.startedAt);
    ids.shrunk = done.resultVersion.id;
    expect(done).toMatchObject({
      kind: 'SHRINK',
      status: 'SUCCEEDED',
      error: null,
      attempts: 1,
      progress: { step: 28, totalSteps: 28 },
      artifact: null,
    });
    const v = done.resultVersion;
    expect(v).toMatchObject({
      version: 2,
      rank: 4,
      alpha: 4,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      parents: [{ versionId: ids.v1, weight: 1, version: { id: ids.v1, version: 1 } }],
      trainingJob: { id: job.id, kind: 'SHRINK' },
    });
    expect({ ...v.derivation, report: undefined }).toEqual({
      operation: 'SHRINK',
      method: null,
      rank: 4,
      energy: null,
      report: undefined,
    });
    const report = v.derivation.report;
    expect(report.rank).toBe(4);
    expect(report.modules).toHaveLength(28);
    expect(report.modules[0]).toMatchObject({
      module: 'model.layers.0.self_attn.q_proj',
      shape: [128, 128],
      rankBefore: 16,
      rank: 4,
    });
    for (const m of report.modules) {
      expect(m.droppedEnergy).toBeLessThan(1e-10);
      expect(m.keptEnergy).toBeGreaterThan(1 - 1e-10);
      expect(m.relativeError).toBeLessThan(1e-5);
    }
    // The versions' own files answer the same (rank 4 in the stored safetensors).
    const stored = parseSafetensors(await download(v.downloadUrl));
    expect(
      stored.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape,
    ).toEqual([4, 128]);
    // Nothing was promoted: without a production alias the bare name serves the latest version, v2.
    const gen = async (adapter: string | null, mode: string) =>
      (
        await ok(h, A.key, GENERATE, {
          input: { adapter, prompt: 'The quick brown fox', maxTokens: 24, mode },
        })
      ).generate;
    for (const mode of ['SIDELOAD', 'MERGED']) {
      const source = await gen('src@v1', mode);
      const derived = await gen('src', mode);
      expect(derived.adapterVersion).toEqual({ version: 2 });
      expect(derived.text).toBe(source.text);
      expect(derived.text).not.toBe((await gen(null, mode)).text);
    }
  });

  it('MERGE LINEAR, CAT and SVD equal the engine merge of the same files; parents keep order and weights', async () => {
    const sources = [
      { versionId: ids.o1, weight: 0.7 },
      { versionId: ids.o2, weight: -0.3 },
    ];
    const parsed = [files.o1, files.o2].map((f) => parsePeftAdapter(f.adapterConfig, f.weights, BASE));
    let n = 1; // `merged` has no version yet
    for (const [method, rank] of [
      ['LINEAR', null],
      ['CAT', null],
      ['SVD', 4],
    ] as const) {
      const done = await run(DERIVE, {
        adapterId: ids.merged,
        operation: 'MERGE',
        method,
        sources,
        ...(rank === null ? {} : { rank }),
      });
      measured[`merge${method}`] = Date.parse(done.finishedAt) - Date.parse(done.startedAt);
      const want = mergeAdapters(
        parsed.map((adapter, i) => ({ adapter, weight: sources[i]!.weight })),
        { method: method.toLowerCase() as 'linear', config: BASE, ...(rank === null ? {} : { rank }) },
      );
      const v = done.resultVersion;
      expect(v).toMatchObject({
        version: n++,
        rank: want.adapter.rank,
        alpha: want.adapter.rank,
        targetModules: want.adapter.targetModules,
        parents: [
          { versionId: ids.o1, weight: 0.7, version: { id: ids.o1, version: 1 } },
          { versionId: ids.o2, weight: -0.3, version: { id: ids.o2, version: 2 } },
        ],
      });
      expect(v.derivation).toMatchObject({ operation: 'MERGE', method, rank, energy: null });
      expect(v.derivation.report).toMatchObject({ method, rank: want.adapter.rank });
      const tensors = parseSafetensors(await download(v.downloadUrl)).tensors;
      const got = new Map<string, { a: Float32Array; b: Float32Array }>();
      for (const [key, entry] of tensors) {
        const m = /layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_(A|B)\.weight$/.exec(key)!;
        const k = `${m[1]}.${m[2]}`;
        const slot = got.get(k) ?? { a: new Float32Array(), b: new Float32Array() };
        slot[m[3] === 'A' ? 'a' : 'b'] = toFloat32(entry);
        got.set(k, slot);
      }
      expect([...got.keys()].sort()).toEqual([...want.adapter.weights.keys()].sort());
      for (const [k, w] of want.adapter.weights) {
        expect(got.get(k)!.a, `${method} ${k} A`).toEqual(w.a);
        expect(got.get(k)!.b, `${method} ${k} B`).toEqual(w.b);
      }
      if (method === 'SVD') {
        expect(v.derivation.report.modules).toEqual(
          want.report.dropped.map((d) => ({
            module: d.module,
            rank: 4,
            droppedEnergy: d.droppedEnergy,
            keptEnergy: 1 - d.droppedEnergy,
            relativeError: Math.sqrt(d.droppedEnergy),
          })),
        );
      }
    }
  });

  it('an idempotency key answers its job; another input under it is CONFLICT', async () => {
    const input = {
      adapterId: ids.merged,
      operation: 'MERGE',
      method: 'CAT',
      sources: [{ versionId: ids.o1 }, { versionId: ids.o3, weight: 2 }],
      idempotencyKey: 'cat-once',
    };
    const [a, b] = await Promise.all([ok(h, A.key, DERIVE, { input }), ok(h, A.key, DERIVE, { input })]);
    expect(a.deriveAdapterVersion.id).toBe(b.deriveAdapterVersion.id);
    await finished(A.key, a.deriveAdapterVersion.id);
    // The same again, after it finished: the same job, no second version.
    expect((await ok(h, A.key, DERIVE, { input })).deriveAdapterVersion.id).toBe(a.deriveAdapterVersion.id);
    expect(await codes(h, A.key, DERIVE, { input: { ...input, method: 'SVD' } })).toEqual(['CONFLICT']);
    expect(
      await codes(h, A.key, DERIVE, { input: { ...input, sources: [...input.sources].reverse() } }),
    ).toEqual(['CONFLICT']);
    expect(
      await codes(h, A.key, EXPORT, {
        input: { versionId: ids.o1, format: 'GGUF', idempotencyKey: 'cat-once' },
      }),
    ).toEqual(['CONFLICT']);
    expect(
      await codes(h, A.key, `mutation($input: StartTrainingInput!) { startTraining(input: $input) { id } }`, {
        input: {
          adapterId: ids.merged,
          datasetId: 'ds_00000000000000000000000000',
          idempotencyKey: 'cat-once',
        },
      }),
    ).toEqual(['CONFLICT']);
    const versions = (
      await ok(h, A.key, `query($id: ID!) { adapter(id: $id) { versions { edges { node { version } } } } }`, {
        id: ids.merged,
      })
    ).adapter.versions.edges;
    expect(versions).toHaveLength(4);
  });

  it('refuses bad input before queuing, naming the field, the versions or the module', async () => {
    const derive = (over: Record<string, unknown>) =>
      gql(h, A.key, DERIVE, {
        input: { adapterId: ids.merged, operation: 'MERGE', method: 'CAT', ...over },
      });
    const two = [{ versionId: ids.o1 }, { versionId: ids.o2 }];
    const shrink = {
      adapterId: ids.src,
      operation: 'SHRINK',
      method: null,
      sources: [{ versionId: ids.v1 }],
    };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...shrink, rank: 16 }, /rank 16 is not below src@v1's rank 16/],
      [{ ...shrink, rank: 0 }, /rank must be a positive integer/],
      [{ ...shrink, energy: 0 }, /energy must be in \(0, 1\]/],
      [{ ...shrink, energy: 1.5 }, /energy must be in \(0, 1\]/],
      [{ ...shrink }, /exactly one of rank and energy/],
      [{ ...shrink, rank: 4, energy: 0.9 }, /exactly one of rank and energy/],
      [{ ...shrink, rank: 4, sources: [{ versionId: ids.v1, weight: 2 }] }, /weight 1/],
      [{ ...shrink, rank: 4, sources: two }, /exactly one source/],
      [{ sources: [{ versionId: ids.o1 }] }, /two or more source versions/],
      [{ sources: [{ versionId: ids.o1 }, { versionId: ids.o1, weight: 2 }] }, /listed twice/],
      [{ sources: two, method: null }, /needs a method/],
      [{ sources: two, rank: 4 }, /rank applies to the SVD method only/],
      [{ sources: two, energy: 0.5 }, /energy applies to SHRINK only/],
      [
        { sources: [{ versionId: ids.o1 }, { versionId: ids.o3 }], method: 'LINEAR' },
        /other@v1 rank 8, other@v3 rank 4/,
      ],
      [{ sources: two, method: 'SVD', rank: 64 }, /rank 64 is not below min\(out, in\) = 64 of k_proj/],
      [
        { adapterId: ids.twin, sources: two },
        /other@v1 is an adapter of deltagate-tiny; twin is of tiny-twin/,
      ],
    ];
    for (const [over, message] of cases) {
      const r = await derive(over);
      expect({ over, code: r.errors?.[0]?.extensions?.code }).toEqual({ over, code: 'BAD_USER_INPUT' });
      expect(r.errors![0]!.message).toMatch(message);
    }
    expect(
      await codes(h, A.key, EXPORT, { input: { versionId: ids.o1, format: 'HF', quantize: 'Q8_0' } }),
    ).toEqual(['BAD_USER_INPUT']);
    // A weight that is not a finite number never reaches the service (1e400 is Infinity in JSON).
    const raw = await fetch(h.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${A.key}` },
      body: `{"query": ${JSON.stringify(DERIVE)}, "variables": {"input": {"adapterId": "${ids.merged}", "operation": "MERGE", "method": "CAT", "sources": [{"versionId": "${ids.o1}", "weight": 1e400}, {"versionId": "${ids.o2}"}]}}}`,
    });
    expect(((await raw.json()) as Loose).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    const jobs = await ok(h, A.key, `{ trainingJobs(first: 100, status: QUEUED) { edges { node { id } } } }`);
    expect(jobs.trainingJobs.edges).toEqual([]);
  });

  it("another tenant's adapters, versions and jobs are NOT_FOUND, directly and as sources", async () => {
    const mine = await createAdapter('mine', B.key);
    const bv = (await importVersion(mine, makePeftAdapter({ rank: 8, seed: 9 }), B.key)).id;
    const cases: [string, Record<string, unknown>][] = [
      [DERIVE, { adapterId: ids.src, operation: 'SHRINK', sources: [{ versionId: bv }], rank: 2 }],
      [DERIVE, { adapterId: mine, operation: 'SHRINK', sources: [{ versionId: ids.v1 }], rank: 2 }],
      [
        DERIVE,
        {
          adapterId: mine,
          operation: 'MERGE',
          method: 'CAT',
          sources: [{ versionId: bv }, { versionId: ids.o1 }],
        },
      ],
      [EXPORT, { versionId: ids.v1, format: 'GGUF' }],
    ];
    for (const [q, input] of cases) expect(await codes(h, B.key, q, { input })).toEqual(['NOT_FOUND']);
    const job = (await ok(h, A.key, `{ trainingJobs(first: 1, kind: SHRINK) { edges { node { id } } } }`))
      .trainingJobs.edges[0].node.id;
    expect(await codes(h, B.key, GET_JOB, { id: job })).toEqual(['NOT_FOUND']);
    expect(
      await codes(h, B.key, `query($id: ID!) { adapterVersion(id: $id) { id } }`, { id: ids.shrunk }),
    ).toEqual(['NOT_FOUND']);
    // B's own derive works: the sources of one tenant only.
    const done = await run(
      DERIVE,
      { adapterId: mine, operation: 'SHRINK', sources: [{ versionId: bv }], energy: 0.5 },
      B.key,
    );
    expect(done.resultVersion.parents).toEqual([
      { versionId: bv, weight: 1, version: { id: bv, version: 1 } },
    ]);
    expect(done.resultVersion.derivation).toMatchObject({ operation: 'SHRINK', rank: null, energy: 0.5 });
  });

  it('cancelTrainingJob cancels a queued derive job: CANCELLED on the stream, nothing registered', async () => {
    const ds = (
      await ok(h, A.key, `mutation($input: UploadDatasetInput!) { uploadDataset(input: $input) { id } }`, {
        input: { name: 'facts', content: FACTS_JSONL, format: 'PROMPT_COMPLETION' },
      })
    ).uploadDataset.id;
    // The one in-process worker (DELTAGATE_WORKER_CONCURRENCY=1) is busy with a long training job…
    const training = (
      await ok(h, A.key, `mutation($input: StartTrainingInput!) { startTraining(input: $input) { id } }`, {
        input: { adapterId: ids.other, datasetId: ds, hyperparameters: factsHyperparameters(400) },
      })
    ).startTraining.id;
    await waitFor('training to run', async () => (await jobOf(A.key, training)).status === 'RUNNING');
    // … so this one waits in the queue.
    const job = (
      await ok(h, A.key, DERIVE, {
        input: {
          adapterId: ids.merged,
          operation: 'MERGE',
          method: 'SVD',
          sources: [{ versionId: ids.o1 }, { versionId: ids.o2 }],
        },
      })
    ).deriveAdapterVersion;
    const progress = collect<Loose>(wsClient(h, `Bearer ${A.key}`), PROGRESS, { id: job.id });
    await waitFor('the first event', async () => progress.events.length > 0);
    const cancelled = (
      await ok(h, A.key, `mutation($id: ID!) { cancelTrainingJob(id: $id) { id kind status } }`, {
        id: job.id,
      })
    ).cancelTrainingJob;
    expect(cancelled).toEqual({ id: job.id, kind: 'MERGE', status: 'CANCELLED' });
    await progress.done;
    expect(progress.events.map((e) => e.data.trainingJobProgress.status)).toEqual(['QUEUED', 'CANCELLED']);
    await ok(h, A.key, `mutation($id: ID!) { cancelTrainingJob(id: $id) { id } }`, { id: training });
    await finished(A.key, training);
    const after = await jobOf(A.key, job.id);
    expect(after).toMatchObject({ status: 'CANCELLED', resultVersion: null, attempts: 0 });
  });

  it('EXPORT GGUF: downloads through the presigned URL, parses, and imported back generates the merged source', async () => {
    const done = await run(EXPORT, { versionId: ids.v1, format: 'GGUF' });
    measured.exportGguf = Date.parse(done.finishedAt) - Date.parse(done.startedAt);
    expect(done).toMatchObject({
      kind: 'EXPORT',
      resultVersion: null,
      spec: { operation: 'EXPORT', versionId: ids.v1, format: 'GGUF', quantize: 'NONE' },
      artifact: { fileName: 'src-v1.gguf', format: 'GGUF', quantize: 'NONE' },
    });
    const art = done.artifact;
    expect(Date.parse(art.expiresAt) - Date.parse(art.createdAt)).toBe(7 * 24 * 3600 * 1000);
    const bytes = await download(art.downloadUrl);
    expect(bytes.byteLength).toBe(art.sizeBytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(art.sha256);
    expect(Buffer.from(bytes.subarray(0, 4)).toString('latin1')).toBe('GGUF');
    const gguf = parseGguf(bytesSource(bytes));
    expect(gguf.version).toBe(3);
    expect(gguf.tensors).toHaveLength(expectedTensors(BASE).length);
    expect(new Set(gguf.tensors.map((t) => t.type.name))).toEqual(new Set(['F32']));

    const file = join(scratch, 'export.gguf');
    writeFileSync(file, bytes);
    await importGguf(file, join(scratch, 'imported'));
    const imported = await Engine.load(join(scratch, 'imported'), { session: { threads: 1 } });
    const base = await Engine.load(builtinDir, { session: { threads: 1 } });
    try {
      const adapter = parsePeftAdapter(files.v1!.adapterConfig, files.v1!.weights, BASE);
      for (const promptIds of [
        [1, 40, 50, 60],
        [1, 100, 7],
      ]) {
        const want = await base.generate({
          promptIds,
          maxTokens: 16,
          stopAtEos: false,
          adapter,
          mode: 'merged',
        });
        const got = await imported.generate({ promptIds, maxTokens: 16, stopAtEos: false });
        expect(got.tokenIds).toEqual(want.tokenIds);
      }
    } finally {
      await imported.close();
      await base.close();
    }
  });

  it('EXPORT HF (a tar of the directory) and Q8_0; deleting the version deletes its exports, keeps lineage', async () => {
    const hf = await run(EXPORT, { versionId: ids.v1, format: 'HF' });
    measured.exportHf = Date.parse(hf.finishedAt) - Date.parse(hf.startedAt);
    expect(hf.artifact).toMatchObject({ fileName: 'src-v1-hf.tar', format: 'HF', quantize: 'NONE' });
    const tar = await download(hf.artifact.downloadUrl);
    const entries: Record<string, number> = {};
    const ex = tarExtract();
    const listed = (async () => {
      for await (const entry of ex) {
        let n = 0;
        for await (const c of entry) n += (c as Buffer).length;
        entries[entry.header.name] = n;
      }
    })();
    ex.end(Buffer.from(tar));
    await listed;
    expect(Object.keys(entries)).toEqual(
      [
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
      ].map((f) => `src-v1/${f}`),
    );
    const parameters = expectedTensors(BASE).reduce((n, t) => n + t.shape.reduce((x, y) => x * y, 1), 0);
    expect(entries['src-v1/model.safetensors']).toBeGreaterThan(4 * parameters);

    const q8 = await run(EXPORT, { versionId: ids.v1, format: 'GGUF', quantize: 'Q8_0' });
    expect(q8.artifact.fileName).toBe('src-v1-q8_0.gguf');
    expect(q8.artifact.sizeBytes).toBeLessThan(hf.artifact.sizeBytes / 2);

    const { repos, blobs } = h.server.services;
    const prefix = exportPrefix(A.id, hf.id);
    expect((await blobs.list(prefix)).map((o) => o.key)).toEqual([`${prefix}a1/model.tar`]);
    expect(
      await ok(h, A.key, `mutation($id: ID!) { deleteAdapterVersion(id: $id) }`, { id: ids.v1 }),
    ).toEqual({ deleteAdapterVersion: true });
    for (const j of [hf, q8]) {
      expect((await jobOf(A.key, j.id)).artifact).toBeNull();
      expect(await blobs.list(exportPrefix(A.id, j.id))).toEqual([]);
    }
    // The derived version keeps its parent's id; the parent itself is gone.
    const shrunk = (
      await ok(
        h,
        A.key,
        `query($id: ID!) { adapterVersion(id: $id) { parents { versionId weight version { id } } } }`,
        {
          id: ids.shrunk,
        },
      )
    ).adapterVersion;
    expect(shrunk.parents).toEqual([{ versionId: ids.v1, weight: 1, version: null }]);
    // A derive from the deleted version is NOT_FOUND now.
    expect(
      await codes(h, A.key, DERIVE, {
        input: { adapterId: ids.src, operation: 'SHRINK', sources: [{ versionId: ids.v1 }], rank: 2 },
      }),
    ).toEqual(['NOT_FOUND']);

    // Expiry: an export past its expiresAt is swept (SQL first, then the blob).
    const gguf = await run(EXPORT, { versionId: ids.o1, format: 'GGUF', quantize: 'Q4_0' });
    const logger = pino({ level: 'silent' });
    expect(await sweepExpiredArtifacts(repos, blobs, logger, new Date())).toBe(0);
    expect(
      await sweepExpiredArtifacts(repos, blobs, logger, new Date(Date.now() + 8 * 24 * 3600 * 1000)),
    ).toBe(1);
    expect((await jobOf(A.key, gguf.id)).artifact).toBeNull();
    expect(await blobs.list(exportPrefix(A.id, gguf.id))).toEqual([]);
  });
});
