/**
 * `deltagate adapter merge`: several adapters into one with PEFT's `add_weighted_adapter` semantics
 * (linear, cat, svd; src/engine/delta/merge.ts). Argument parsing, the common-base check and printing only.
 * Exit codes: 0 written, 1 failed (nothing is written), 2 usage error.
 */
import { loadModelConfig, modelDirProblem } from '../engine/formats/checkpoint.js';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import {
  checkOutDir,
  configForShape,
  jointShape,
  readToolAdapter,
  writeAdapterAtomically,
} from '../engine/delta/adapter-io.js';
import { mergeAdapters, type MergeMethod } from '../engine/delta/merge.js';
import { splitKey } from '../engine/delta/shrink.js';
import { BadInputError } from '../shared/errors.js';
import { noPositionals, readFlags } from './flags.js';
import { usageExit } from './command-kit.js';

export const summary = "several adapters into one: PEFT's add_weighted_adapter (linear, cat, svd)";

const USAGE = `usage: deltagate adapter merge --adapter DIR[:WEIGHT] --adapter DIR[:WEIGHT] ... --out DIR
                               --method linear|cat|svd [--rank R] [--base DIR]
  WEIGHT (default 1, may be negative) multiplies that adapter's s·B·A. As PEFT's add_weighted_adapter:
  linear   equal ranks; A = Σ sign·√|w·s|·A, B = Σ √|w·s|·B (cross terms included, as PEFT)
  cat      rank Σ r: exactly Σ w·s·B·A
  svd      Σ w·s·B·A truncated to --rank (default: the largest input rank) by its SVD
  One adapter is always merged linearly. --base DIR checks every adapter against that model.`;

export interface MergeArgs {
  adapters: Array<{ dir: string; weight: number }>;
  out: string;
  method: MergeMethod;
  rank?: number;
  base?: string;
}

/** DIR or DIR:WEIGHT (the part after the last ':' when it is a number). */
export function parseAdapterSpec(spec: string): { dir: string; weight: number } {
  const colon = spec.lastIndexOf(':');
  if (colon > 0) {
    const w = spec.slice(colon + 1);
    if (w.trim() !== '' && Number.isFinite(Number(w)))
      return { dir: spec.slice(0, colon), weight: Number(w) };
  }
  return { dir: spec, weight: 1 };
}

export function parseArgs(argv: string[]): MergeArgs | { help: true } | { error: string } {
  const flags = readFlags(argv, ['--out', '--method', '--rank', '--base'], [], ['--adapter']);
  if ('help' in flags || 'error' in flags) return flags;
  const stray = noPositionals(flags);
  if (stray) return stray;
  const specs = flags.lists.get('--adapter') ?? [];
  if (specs.length === 0) return { error: '--adapter DIR[:WEIGHT] is required (one or more)' };
  const out = flags.values.get('--out');
  if (out === undefined) return { error: '--out DIR is required' };
  const method = flags.values.get('--method');
  if (method === undefined) return { error: '--method linear|cat|svd is required' };
  if (method !== 'linear' && method !== 'cat' && method !== 'svd')
    return { error: `--method must be linear, cat or svd, got ${JSON.stringify(method)}` };
  const args: MergeArgs = { adapters: specs.map(parseAdapterSpec), out, method };
  const r = flags.values.get('--rank');
  if (r !== undefined) {
    const rank = Number(r);
    if (!Number.isInteger(rank) || rank < 1)
      return { error: `--rank needs a positive integer, got ${JSON.stringify(r)}` };
    if (method !== 'svd') return { error: '--rank applies to --method svd only' };
    args.rank = rank;
  }
  const base = flags.values.get('--base');
  if (base !== undefined) args.base = base;
  return args;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('adapter merge', USAGE, args);
  let base: ModelConfig | undefined;
  if (args.base !== undefined) {
    const problem = await modelDirProblem(args.base);
    if (problem) throw new BadInputError(`--base ${args.base} ${problem}`);
    base = (await loadModelConfig(args.base)).config;
  }
  await checkOutDir(args.out);
  const inputs = [];
  for (const { dir } of args.adapters) inputs.push(await readToolAdapter(dir, base));
  const joint = jointShape(inputs);
  const config = base ?? configForShape(joint);
  // A layers_to_transform anywhere: the result covers exactly the layers some input has, and says so.
  const partial = inputs.some((t) => t.layersToTransform !== null);
  const layers = partial
    ? [...new Set(inputs.flatMap((t) => [...t.adapter.weights.keys()].map((k) => splitKey(k).layer)))].sort(
        (x, y) => x - y,
      )
    : undefined;
  const { adapter, report } = mergeAdapters(
    inputs.map((t, i) => ({ adapter: t.adapter, weight: args.adapters[i]!.weight })),
    {
      method: args.method,
      config,
      ...(args.rank === undefined ? {} : { rank: args.rank }),
      ...(layers ? { layers } : {}),
    },
  );
  if (report.method !== args.method) console.error(`note: one adapter merges linearly (as PEFT does)`);
  for (const d of report.dropped)
    console.log(`${d.module.padEnd(34)} dropped energy ${d.droppedEnergy.toExponential(2)}`);
  console.log(
    `merged ${inputs.length} adapter${inputs.length === 1 ? '' : 's'} (${args.adapters.map((a) => `${a.dir}×${a.weight}`).join(', ')}) by ${report.method}: rank ${report.rank}, modules ${adapter.targetModules.join(',')}`,
  );
  await writeAdapterAtomically(args.out, adapter, { layersToTransform: layers ?? null });
  console.log(`wrote PEFT adapter to ${args.out}`);
  return 0;
}
