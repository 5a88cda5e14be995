/**
 * A small argv reader for the conversion commands (export, import-gguf, pull): `--flag value`,
 * `--flag=value`, boolean switches, positionals, and `--help`. Each command still checks its own values
 * and requirements; this only splits argv and names what is malformed.
 */
import type { NotRunnable } from './command-kit.js';

export interface Flags {
  values: Map<string, string>;
  switches: Set<string>;
  positionals: string[];
}

/** `valueFlags` take a value, `switchFlags` none; anything else starting with `-` is an error. */
export function readFlags(
  argv: string[],
  valueFlags: readonly string[],
  switchFlags: readonly string[] = [],
): Flags | NotRunnable {
  const out: Flags = { values: new Map(), switches: new Set(), positionals: [] };
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
