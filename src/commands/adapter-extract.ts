/**
 * `deltagate adapter extract`: a PEFT adapter from a fine-tuned checkpoint and its base (truncated SVD of
 * each ΔW; src/engine/delta/extract.ts), with `extract-report.json` beside the adapter files. Argument
 * parsing and printing only. Exit codes: 0 written, 1 failed (bad input: nothing is written), 2 usage error.
 */
import { loadCheckpoint, modelDirProblem } from '../engine/formats/checkpoint.js';
import { isLinearModule, type LinearModule } from '../engine/formats/hf-config.js';
import { checkOutDir, writeAdapterAtomically } from '../engine/delta/adapter-io.js';
import { extractAdapter, type ModuleReport } from '../engine/delta/extract.js';
import type { TruncatedSvdOptions } from '../engine/linalg/randomized-svd.js';
import { BadInputError } from '../shared/errors.js';
import { noPositionals, rankOrEnergy, readFlags } from './flags.js';
import { usageExit } from './command-kit.js';

export const summary = 'a LoRA adapter from a fine-tuned checkpoint: truncated SVD of W_tuned − W_base';

const USAGE = `usage: deltagate adapter extract --base DIR --tuned DIR --out DIR (--rank R | --energy F) [options]
  --rank R          every module at rank R (below min(out, in) of every module)
  --energy F        per module the smallest rank keeping ≥ F of ‖ΔW‖² (written as rank_pattern)
  --target-modules q_proj,v_proj,...   (default: all seven linears)
  --svd auto|dense|randomized   (auto: dense up to 256 on the short side, else randomized)
  --oversample P (10)  --power-iterations Q (2)  --seed S (0)
Writes OUT/adapter_config.json, OUT/adapter_model.safetensors (lora_alpha = r: scale 1) and
OUT/extract-report.json (per module: rank, kept energy, relative Frobenius error).`;

const FLAGS = [
  '--base',
  '--tuned',
  '--out',
  '--rank',
  '--energy',
  '--target-modules',
  '--svd',
  '--oversample',
  '--power-iterations',
  '--seed',
];

export interface ExtractArgs {
  base: string;
  tuned: string;
  out: string;
  rank?: number;
  energy?: number;
  targetModules?: LinearModule[];
  svd: TruncatedSvdOptions;
}

export function parseArgs(argv: string[]): ExtractArgs | { help: true } | { error: string } {
  const flags = readFlags(argv, FLAGS);
  if ('help' in flags || 'error' in flags) return flags;
  const stray = noPositionals(flags);
  if (stray) return stray;
  const one = (f: string) => flags.values.get(f);
  for (const f of ['--base', '--tuned', '--out'])
    if (one(f) === undefined) return { error: `${f} DIR is required` };
  const re = rankOrEnergy(flags);
  if ('error' in re) return re;
  const args: ExtractArgs = {
    base: one('--base')!,
    tuned: one('--tuned')!,
    out: one('--out')!,
    ...re,
    svd: {},
  };
  const tm = one('--target-modules');
  if (tm !== undefined) {
    const mods = tm
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const bad = mods.find((m) => !isLinearModule(m));
    if (bad !== undefined || mods.length === 0)
      return { error: `unknown target module ${JSON.stringify(bad ?? tm)}` };
    args.targetModules = mods as LinearModule[];
  }
  const svd = one('--svd');
  if (svd !== undefined) {
    if (svd !== 'auto' && svd !== 'dense' && svd !== 'randomized')
      return { error: `--svd must be auto, dense or randomized, got ${JSON.stringify(svd)}` };
    args.svd.method = svd;
  }
  for (const [flag, key, min] of [
    ['--oversample', 'oversample', 0],
    ['--power-iterations', 'powerIterations', 0],
    ['--seed', 'seed', 0],
  ] as const) {
    const v = one(flag);
    if (v === undefined) continue;
    const x = Number(v);
    if (!Number.isInteger(x) || x < min)
      return { error: `${flag} needs a non-negative integer, got ${JSON.stringify(v)}` };
    args.svd[key] = x;
  }
  return args;
}

export function moduleLine(m: ModuleReport): string {
  return (
    `${m.module.padEnd(34)} [${m.shape.join('×')}]`.padEnd(48) +
    ` rank ${String(m.rank).padStart(4)}  kept ${m.keptEnergy.toFixed(6)}  rel.err ${m.relativeError.toExponential(2)}` +
    `  ${m.svd} ${m.seconds.toFixed(2)}s`
  );
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('adapter extract', USAGE, args);
  for (const [flag, dir] of [
    ['--base', args.base],
    ['--tuned', args.tuned],
  ] as const) {
    const problem = await modelDirProblem(dir);
    if (problem) throw new BadInputError(`${flag} ${dir} ${problem}`);
  }
  await checkOutDir(args.out); // before minutes of SVDs
  const [base, tuned] = await Promise.all([loadCheckpoint(args.base), loadCheckpoint(args.tuned)]);
  const nameOrPath = base.rawConfig._name_or_path;
  const { adapter, report } = extractAdapter(base, tuned, {
    ...(args.rank === undefined ? { energy: args.energy! } : { rank: args.rank }),
    ...(args.targetModules ? { targetModules: args.targetModules } : {}),
    svd: args.svd,
    baseModelName: typeof nameOrPath === 'string' && nameOrPath !== '' ? nameOrPath : args.base,
    onModule: (m) => console.log(moduleLine(m)),
  });
  for (const f of report.configDifferences)
    console.error(`warning: config field ${f} differs between base and tuned (shapes agree)`);
  for (const u of report.untracked) {
    console.error(
      `warning: ${u.tensor} differs (max |Δ| ${u.maxAbsDiff.toExponential(2)}) but is not a targeted linear: the adapter does not carry it`,
    );
  }
  const t = report.totals;
  console.log(
    `total: ${report.modules.length} modules, rank ${adapter.rank}${args.energy === undefined ? '' : ' (largest; rank_pattern for the rest)'}, kept energy ${t.keptEnergy.toFixed(6)}, relative error ${t.relativeError.toExponential(2)}`,
  );
  const reportJson = {
    base: args.base,
    tuned: args.tuned,
    svd: { method: 'auto', oversample: 10, powerIterations: 2, seed: 0, ...args.svd },
    ...report,
  };
  await writeAdapterAtomically(args.out, adapter, {
    extraFiles: { 'extract-report.json': JSON.stringify(reportJson, null, 2) + '\n' },
  });
  console.log(`wrote PEFT adapter and extract-report.json to ${args.out}`);
  return 0;
}
