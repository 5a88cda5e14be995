/**
 * `deltagate adapter <sub-command>`: the adapter tools. A dispatcher only: each sub-command lives in
 * `src/commands/adapter-<name>.ts`, exports `run(argv)` and `summary` like a top-level command, and is
 * imported lazily (static specifiers, so bundlers and vitest see them). Shared flag reading: flags.ts.
 */
import { usageExit } from './command-kit.js';

interface SubModule {
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** Add a sub-command here and in its own adapter-<name>.ts. */
const SUBCOMMANDS: Record<string, () => Promise<SubModule>> = {
  extract: () => import('./adapter-extract.js'),
  shrink: () => import('./adapter-shrink.js'),
  merge: () => import('./adapter-merge.js'),
};

export const summary = 'adapter tools: extract (fine-tuned checkpoint → LoRA), shrink, merge';

async function usage(): Promise<string> {
  const lines = ['usage: deltagate adapter <command> [options]   (deltagate adapter <command> --help)', ''];
  for (const [name, load] of Object.entries(SUBCOMMANDS))
    lines.push(`  ${name.padEnd(10)} ${(await load()).summary}`);
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help')
    return usageExit('adapter', await usage(), { help: true });
  const load = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
  if (!load) return usageExit('adapter', await usage(), { error: `unknown command: ${name}` });
  return (await load()).run(rest);
}
