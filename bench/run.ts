/**
 * The engine benchmark suite: runs bench/decode.ts, bench/prefill.ts and bench/sideload.ts, one configuration
 * per child process (isolated peak RSS, no JIT/allocator carry-over), and prints the table of
 * docs/PERFORMANCE.md; `--write` replaces the engine section there. `npm run bench` (≈ 5 min on 2 cores).
 * `--quick` runs only the 100M fp32/int4 batch-1 decode. Ceilings are measured inside each child.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { RESULT_PREFIX, benchArgs } from './lib/args.js';
import { storiesQuantError } from './lib/stories-error.js';

type Result = Record<string, number | string>;

/** Runs one bench script in a child process; returns every result line it printed. */
function children(script: string, args: Record<string, string | number>): Result[] {
  const argv = [
    '--import',
    'tsx',
    `bench/${script}.ts`,
    ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)]),
  ];
  const p = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const lines = p.stdout.split('\n').filter((l) => l.startsWith(RESULT_PREFIX));
  if (p.status !== 0 || lines.length === 0) {
    throw new Error(`${script} ${JSON.stringify(args)} failed (${p.status}):\n${p.stderr}`);
  }
  const rs = lines.map((l) => JSON.parse(l.slice(RESULT_PREFIX.length)) as Result);
  for (const r of rs) console.error(`  ${script} ${JSON.stringify(args)} → ${JSON.stringify(r)}`);
  return rs;
}

const child = (script: string, args: Record<string, string | number>): Result => children(script, args)[0]!;

const f = (x: number | string, d = 1) => (typeof x === 'number' ? x.toFixed(d) : x);
const pct = (x: number | string) => `${(Number(x) * 100).toFixed(0)}%`;
const label = (q: string | number) =>
  q === 'none' ? 'fp32' : q === 'nf4' ? 'NF4 (MatMulBnb4)' : 'int4 (MatMulNBits)';

function table(head: string[], rows: (string | number)[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const args = benchArgs();
const quick = args.has('quick');
const threads = args.get('threads');
const t: Record<string, string> = threads ? { threads } : {};

const decode: Result[] = [];
const prefill: Result[] = [];
let side: Result | undefined;
console.error('decode');
// The bases of one model and batch run round-robin in one process (see bench/decode.ts).
for (const batch of quick ? [1] : [1, 8]) {
  decode.push(
    ...children('decode', { preset: '100m', quantize: quick ? 'none,int4' : 'none,nf4,int4', batch, ...t }),
  );
}
if (!quick) {
  decode.push(...children('decode', { preset: '1g', quantize: 'none,int4', batch: 1, steps: 10, ...t }));
  console.error('prefill');
  for (const quantize of ['none', 'nf4', 'int4']) {
    for (const batch of [1, 8])
      prefill.push(child('prefill', { preset: '100m', quantize, batch, tokens: 128, ...t }));
  }
  console.error('sideload');
  side = child('sideload', { preset: '100m', batch: 8, rank: 16, ...t });
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length}× ${cpu}, ` +
    `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, onnxruntime-node ${ort.env.versions.common}, ` +
    `${threads ?? 'default (all cores)'} intra-op threads, machine load ${os.loadavg()[0]!.toFixed(1)} at the end.`,
  '',
  '### Decode (tokens/s; roofline = batch × GEMV bandwidth ÷ weight bytes per step)',
  '',
  'The bases of one model and batch size ran round-robin in one process with a GEMV probe pass before each',
  "step (all see the same load); peak RSS is that process's, all its sessions and the 512 MiB probe included.",
  '',
  table(
    [
      'model',
      'base',
      'batch',
      'bits/param (linears)',
      'MB/step',
      'tokens/s',
      'GEMV GB/s',
      'roofline tok/s',
      'ratio',
      'vs fp32 (same batch)',
      'peak RSS MiB',
    ],
    decode.map((r) => [
      r.preset === '100m' ? '100M' : '350M (1.4 GB fp32)',
      label(r.quantize!),
      r.batch!,
      f(r.bitsPerLinearParam!, 2),
      f(Number(r.bytesPerStep) / 1e6, 0),
      f(r.tokensPerSecond!),
      f(Number(r.gemvBytesPerSecond) / 1e9, 1),
      f(r.rooflineTokensPerSecond!),
      pct(r.rooflineRatio!),
      `${f(r.vsFirst!, 2)}×`,
      f(r.peakRssMiB!, 0),
    ]),
  ),
];
if (prefill.length > 0) {
  lines.push(
    '',
    '### Prefill (128 tokens per row; FLOP/s ÷ the fp32 MatMul peak (1024³) measured in the same process)',
    '',
    table(
      ['model', 'base', 'batch', 'ms', 'tokens/s', 'GFLOP/s', 'MatMul peak GFLOP/s', 'ratio', 'peak RSS MiB'],
      prefill.map((r) => [
        '100M',
        label(r.quantize!),
        r.batch!,
        f(r.ms!, 0),
        f(r.tokensPerSecond!, 0),
        f(Number(r.flopsPerSecond) / 1e9, 1),
        f(Number(r.matMulPeakFlops) / 1e9, 1),
        pct(r.peakRatio!),
        f(r.peakRssMiB!, 0),
      ]),
    ),
  );
}
if (side) {
  lines.push(
    '',
    `### Side-loaded LoRA (100M fp32 base, batch ${side.batch}, rank ${side.rank}, all seven modules)`,
    '',
    table(
      ['batch', 'tokens/s', 'vs one adapter'],
      [
        [`${side.batch} rows, one shared adapter`, f(side.singleTokensPerSecond!), '100%'],
        [
          `${side.batch} rows, ${side.batch} distinct adapters`,
          f(side.distinctTokensPerSecond!),
          pct(Number(side.distinctTokensPerSecond) / Number(side.singleTokensPerSecond)),
        ],
        [
          `${side.batch} rows, base graph (no side-load inputs)`,
          f(side.baseTokensPerSecond!),
          pct(Number(side.baseTokensPerSecond) / Number(side.singleTokensPerSecond)),
        ],
      ],
    ),
  );
}
const section = lines.join('\n');
console.log(section);

console.error('stories260k logit error');
const qerr = await storiesQuantError(threads ? Number(threads) : undefined);
const qerrSection = qerr
  ? [
      'Teacher-forced through the fp32 greedy continuation of BOS (128 tokens); per position, logits vs fp32.',
      'A 260K-parameter model (C = 64) is far more sensitive to 4-bit weights than a real-size one: an',
      'independent numpy NF4 round trip (no double quantization) gives a relative logit RMS of 1.14 at BOS.',
      '',
      table(
        [
          'base',
          'bits/param (linears)',
          'max abs Δ',
          'relative RMS',
          'top-1 agreement',
          'mean KL (nats)',
          'decode tok/s',
        ],
        qerr.map((r) => [
          r.base,
          f(r.bitsPerParam, 3),
          f(r.maxAbs, 3),
          f(r.relRms, 3),
          pct(r.top1Agreement),
          f(r.meanKl, 3),
          f(r.decodeTokensPerSecond, 0),
        ]),
      ),
    ].join('\n')
  : '(../shared/models/stories260k absent)';
console.log(`\n${qerrSection}`);

function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/PERFORMANCE.md lacks the ${begin} … ${end} markers`);
  return `${doc.slice(0, a + begin.length)}\n${body}\n${doc.slice(b)}`;
}

if (args.has('write')) {
  const path = 'docs/PERFORMANCE.md';
  let doc = existsSync(path) ? readFileSync(path, 'utf8') : '';
  if (!quick) doc = replaceSection(doc, 'engine-results', section);
  doc = replaceSection(doc, 'engine-quant-error', qerrSection);
  writeFileSync(path, doc);
  console.error(`wrote ${path}`);
}
