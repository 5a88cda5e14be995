/**
 * Flag reading shared by the `deltagate adapter` sub-commands (adapter-extract.ts, adapter-shrink.ts,
 * adapter-merge.ts): `--flag value`, `--flag=value`, multi-value flags, and the --rank / --energy pair.
 */
/**
 * `--flag value`, `--flag=value`, and for flags in `multi` several values (`--adapter a b`, or repeated).
 * Returns the values per flag, `{ help: true }` or `{ error }` (unknown flag, missing value, a single-value
 * flag given twice).
 */
export function readFlags(
  argv: readonly string[],
  known: readonly string[],
  multi: readonly string[] = [],
): Map<string, string[]> | { help: true } | { error: string } {
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: true };
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (!known.includes(flag)) return { error: `unknown argument ${JSON.stringify(arg)}` };
    const values: string[] = [];
    if (eq > 0 && arg.startsWith('--')) values.push(arg.slice(eq + 1));
    else
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) {
        values.push(argv[++i]!);
        if (!multi.includes(flag)) break;
      }
    if (values.length === 0 || values.some((v) => v === '')) return { error: `${flag} needs a value` };
    if (out.has(flag) && !multi.includes(flag)) return { error: `${flag} given twice` };
    out.set(flag, [...(out.get(flag) ?? []), ...values]);
  }
  return out;
}

/** --rank R (positive integer) or --energy F in (0, 1], exactly one. */
export function rankOrEnergy(
  flags: Map<string, string[]>,
): { rank?: number; energy?: number } | { error: string } {
  const r = flags.get('--rank')?.[0];
  const e = flags.get('--energy')?.[0];
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
