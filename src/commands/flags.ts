/**
 * The argv reader of the conversion and ΔW commands (export, import-gguf, pull, adapter extract|shrink|merge):
 * `--flag value`, `--flag=value`, boolean switches, flags that take several values (`--adapter a b`, or
 * repeated), positionals, and `--help`. Each command still checks its own values and requirements; this only
 * splits argv and names what is malformed. (node:util parseArgs has no flag taking several values in a row,
 * which `adapter merge --adapter a b` documents.)
 */
import type { NotRunnable } from './command-kit.js';

export interface Flags {
  values: Map<string, string>;
  /** The values of `listFlags`, in order. */
  lists: Map<string, string[]>;
  switches: Set<string>;
  positionals: string[];
}

/**
 * `valueFlags` take one value, `switchFlags` none, `listFlags` one or more (every following argument up to the
 * next `--flag`, and repeats add to them); anything else starting with `-` is an error.
 */
export function readFlags(
  argv: readonly string[],
  valueFlags: readonly string[],
  switchFlags: readonly string[] = [],
  listFlags: readonly string[] = [],
): Flags | NotRunnable {
  const out: Flags = { values: new Map(), lists: new Map(), switches: new Set(), positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: true };
    if (!arg.startsWith('-') || arg === '-') {
      out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    if (switchFlags.includes(flag)) {
      if (inline !== undefined) return { error: `${flag} takes no value` };
      out.switches.add(flag);
      continue;
    }
    if (listFlags.includes(flag)) {
      const values = inline === undefined ? [] : [inline];
      while (inline === undefined && i + 1 < argv.length && !argv[i + 1]!.startsWith('--'))
        values.push(argv[++i]!);
      if (values.length === 0 || values.includes('')) return { error: `${flag} needs a value` };
      out.lists.set(flag, [...(out.lists.get(flag) ?? []), ...values]);
      continue;
    }
    if (!valueFlags.includes(flag)) return { error: `unknown argument ${JSON.stringify(arg)}` };
    const v = inline ?? argv[++i];
    if (v === undefined || v === '' || (inline === undefined && v.startsWith('--')))
      return { error: `${flag} needs a value` };
    if (out.values.has(flag)) return { error: `${flag} given twice` };
    out.values.set(flag, v);
  }
  return out;
}

/** `value` when it is one of `allowed`, else a usage error naming the flag and the choices. */
export function oneOf<T extends string>(
  flag: string,
  value: string,
  allowed: readonly T[],
): T | { error: string } {
  return (allowed as readonly string[]).includes(value)
    ? (value as T)
    : {
        error: `${flag} must be ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}, got ${JSON.stringify(value)}`,
      };
}

/** For commands that take no positional argument: the first one as a usage error, else null. */
export function noPositionals(flags: Flags): { error: string } | null {
  const first = flags.positionals[0];
  return first === undefined ? null : { error: `unknown argument ${JSON.stringify(first)}` };
}

/** --rank R (positive integer) or --energy F in (0, 1], exactly one. */
export function rankOrEnergy(flags: Flags): { rank?: number; energy?: number } | { error: string } {
  const r = flags.values.get('--rank');
  const e = flags.values.get('--energy');
  if ((r === undefined) === (e === undefined)) return { error: 'give exactly one of --rank R or --energy F' };
  if (r !== undefined) {
    const rank = Number(r);
    if (!Number.isInteger(rank) || rank < 1)
      return { error: `--rank needs a positive integer, got ${JSON.stringify(r)}` };
    return { rank };
  }
  const energy = Number(e);
  if (!(energy > 0 && energy <= 1))
    return { error: `--energy needs a fraction in (0, 1], got ${JSON.stringify(e)}` };
  return { energy };
}
