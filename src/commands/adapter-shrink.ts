/**
 * `deltagate adapter shrink`: an adapter at a lower rank, the best approximation of its s·B·A
 * (src/engine/delta/shrink.ts; ΔW is never formed). Argument parsing and printing only.
 * Exit codes: 0 written, 1 failed (nothing is written), 2 usage error.
 */
import { loadModelConfig, modelDirProblem } from '../engine/formats/checkpoint.js';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import { checkOutDir, readToolAdapter, writeAdapterAtomically } from '../engine/delta/adapter-io.js';
import { shrinkAdapter } from '../engine/delta/shrink.js';
import { BadInputError } from '../shared/errors.js';
import { noPositionals, rankOrEnergy, readFlags } from './flags.js';
import { usageExit } from './command-kit.js';

export const summary = 'an adapter at a lower rank: the optimal truncation of s·B·A (QR + small SVD)';

const USAGE = `usage: deltagate adapter shrink --adapter DIR --out DIR (--rank R | --energy F) [--base DIR]
  --rank R      every module at min(R, its rank); R below the adapter's rank
  --energy F    per module the smallest rank keeping ≥ F of ‖s·B·A‖² (written as rank_pattern)
  --base DIR    check the adapter against this model's config.json (default: the shapes its tensors imply)
The result has lora_alpha = r (scale 1); the energy each module drops is printed.`;

export function parseArgs(
  argv: string[],
):
  | { adapter: string; out: string; base?: string; rank?: number; energy?: number }
  | { help: true }
  | { error: string } {
  const flags = readFlags(argv, ['--adapter', '--out', '--rank', '--energy', '--base']);
  if ('help' in flags || 'error' in flags) return flags;
  const stray = noPositionals(flags);
  if (stray) return stray;
  const adapter = flags.values.get('--adapter');
  const out = flags.values.get('--out');
  if (adapter === undefined) return { error: '--adapter DIR is required' };
  if (out === undefined) return { error: '--out DIR is required' };
  const re = rankOrEnergy(flags);
  if ('error' in re) return re;
  const base = flags.values.get('--base');
  return { adapter, out, ...re, ...(base === undefined ? {} : { base }) };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('adapter shrink', USAGE, args);
  let base: ModelConfig | undefined;
  if (args.base !== undefined) {
    const problem = await modelDirProblem(args.base);
    if (problem) throw new BadInputError(`--base ${args.base} ${problem}`);
    base = (await loadModelConfig(args.base)).config;
  }
  await checkOutDir(args.out);
  const input = await readToolAdapter(args.adapter, base);
  const { adapter, report } = shrinkAdapter(
    input.adapter,
    args.rank === undefined ? { energy: args.energy! } : { rank: args.rank },
  );
  for (const m of report.modules) {
    console.log(
      `${m.module.padEnd(34)} [${m.shape.join('×')}]`.padEnd(48) +
        ` rank ${String(m.rankBefore).padStart(4)} → ${String(m.rankAfter).padStart(4)}  dropped energy ${m.droppedEnergy.toExponential(2)}`,
    );
  }
  console.log(
    `total: ${report.modules.length} modules, rank ${adapter.rank}, dropped energy ${report.droppedEnergy.toExponential(2)} (relative Frobenius error ${Math.sqrt(report.droppedEnergy).toExponential(2)})`,
  );
  await writeAdapterAtomically(args.out, adapter, { layersToTransform: input.layersToTransform });
  console.log(`wrote PEFT adapter to ${args.out}`);
  return 0;
}
