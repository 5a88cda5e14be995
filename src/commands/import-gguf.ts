/**
 * `deltagate import-gguf FILE --out DIR [--force]`: a llama.cpp GGUF (llama or qwen2; F32, F16, BF16, Q8_0,
 * Q4_0, Q4_K, Q6_K) as a Hugging Face directory that `generate`, `train` and DELTAGATE_BASE_MODELS load.
 * Argument parsing and the summary only: the conversion is src/engine/convert/import-gguf.ts.
 * Exit: 0 written, 1 refused (nothing written), 2 usage error.
 */
import { importGguf } from '../engine/convert/import-gguf.js';
import { usageExit } from './command-kit.js';
import { readFlags } from './flags.js';

export const summary = 'convert a GGUF file (llama.cpp) into a Hugging Face model directory';

const USAGE = `usage: deltagate import-gguf FILE.gguf --out DIR [--force]
  Weights are dequantized to F32; q/k rows go back to Hugging Face's RoPE layout; tokenizer.json and
  tokenizer_config.json (chat template included) are rebuilt from the GGUF vocabulary.`;

export type ParsedArgs = { file: string; out: string; force: boolean } | { error: string } | { help: true };

export function parseArgs(argv: string[]): ParsedArgs {
  const f = readFlags(argv, ['--out'], ['--force']);
  if ('help' in f || 'error' in f) return f;
  if (f.positionals.length !== 1) return { error: 'exactly one GGUF FILE is required' };
  const out = f.values.get('--out');
  if (out === undefined) return { error: '--out DIR is required' };
  return { file: f.positionals[0]!, out, force: f.switches.has('--force') };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('import-gguf', USAGE, args);
  const r = await importGguf(args.file, args.out, { force: args.force });
  for (const w of r.warnings) console.error(`deltagate import-gguf: warning: ${w}`);
  const types = Object.entries(r.types)
    .map(([t, n]) => `${n} ${t}`)
    .join(', ');
  const tok = r.tokenizer ? 'with a tokenizer' : 'without a tokenizer (the file has no vocabulary)';
  console.log(`wrote ${r.out} (${r.architecture}, ${r.tensors} tensors from ${types}, ${tok})`);
  return 0;
}
