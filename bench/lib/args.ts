/**
 * `--key value` / `--key=value` parsing for the benchmark scripts, and the one-JSON-line result protocol
 * bench/run.ts reads from each child process. Benchmarks only; the product CLI parses in src/commands/.
 */
export function benchArgs(argv: string[] = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out.set(a.slice(2), argv[++i]!);
    else out.set(a.slice(2), 'true');
  }
  return out;
}

export const RESULT_PREFIX = 'BENCH_RESULT ';

/** Prints the result as the line bench/run.ts parses. */
export function emitResult(result: Record<string, unknown>): void {
  console.log(`${RESULT_PREFIX}${JSON.stringify(result)}`);
}
