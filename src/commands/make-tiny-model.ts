/**
 * `deltagate make-tiny-model --out DIR [--seed N]`: write the built-in `deltagate-tiny` model as a Hugging
 * Face directory. The model itself (config, weights, tokenizer) is defined in src/engine/builtin-model.ts;
 * this file only parses arguments. Exit codes: 0 written, 2 usage error.
 */
import { makeTinyModel } from '../engine/builtin-model.js';
import { usageExit } from './command-kit.js';

export const summary = 'write the built-in deltagate-tiny model (HF layout) to a directory';

const USAGE = 'usage: deltagate make-tiny-model --out DIR [--seed N]';

export type ParsedArgs = { out: string; seed: number } | { error: string } | { help: true };

export function parseArgs(argv: string[]): ParsedArgs {
  let out: string | undefined;
  let seed = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--help':
      case '-h':
        return { help: true };
      case '--out': {
        const v = value();
        if (v === undefined || v === '' || (inline === undefined && v.startsWith('--')))
          return { error: '--out needs a directory' };
        out = v;
        break;
      }
      case '--seed': {
        const v = value();
        if (v === undefined || !/^\d+$/.test(v) || Number(v) > 0xffffffff) {
          return {
            error: `--seed needs an integer in [0, 4294967295], got ${v === undefined ? 'nothing' : JSON.stringify(v)}`,
          };
        }
        seed = Number(v);
        break;
      }
      default:
        return { error: `unknown argument ${JSON.stringify(arg)}` };
    }
  }
  if (out === undefined) return { error: '--out DIR is required' };
  return { out, seed };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('make-tiny-model', USAGE, args);
  await makeTinyModel(args.out, { seed: args.seed });
  console.log(`wrote deltagate-tiny (seed ${args.seed}) to ${args.out}`);
  return 0;
}
