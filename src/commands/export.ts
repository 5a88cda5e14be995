/**
 * `deltagate export --model DIR [--adapter PEFT_DIR] --out PATH [--format hf|gguf] [--quantize
 * none|f16|q8_0|q4_0] [--force]`: the base model with the adapter merged (fp32 W + s·B·A) as a Hugging Face
 * directory or a GGUF file for llama.cpp / Ollama. Argument parsing and the summary only: the conversion is
 * src/engine/convert/export-model.ts. Exit: 0 written, 1 failed (nothing left behind), 2 usage error.
 */
import { exportModel, type ExportFormat, type GgufQuantize } from '../engine/convert/export-model.js';
import { loadModelConfig, modelDirProblem } from '../engine/formats/checkpoint.js';
import { readPeftDir } from '../engine/formats/peft.js';
import { usageExit } from './command-kit.js';
import { oneOf, readFlags } from './flags.js';

export const summary = 'write a model (+ a merged LoRA adapter) as a Hugging Face directory or a GGUF file';

const USAGE = `usage: deltagate export --model DIR [--adapter PEFT_DIR] --out PATH [--format hf|gguf]
         [--quantize none|f16|q8_0|q4_0] [--force]
  --format      hf: config.json + F32 model.safetensors + tokenizer files (transformers, vLLM)
                gguf: one GGUF v3 file (llama.cpp, Ollama); default gguf when PATH ends in .gguf, else hf
  --quantize    GGUF weights: none (F32, default), f16, q8_0, q4_0 (output projection kept q8_0)
  --force       replace an existing PATH (only once the new one is complete)`;

export interface ExportArgs {
  model: string;
  adapter?: string;
  out: string;
  format: ExportFormat;
  quantize: GgufQuantize;
  force: boolean;
}

export type ParsedArgs = ExportArgs | { error: string } | { help: true };

export function parseArgs(argv: string[]): ParsedArgs {
  const f = readFlags(argv, ['--model', '--adapter', '--out', '--format', '--quantize'], ['--force']);
  if ('help' in f || 'error' in f) return f;
  if (f.positionals.length > 0) return { error: `unexpected argument ${JSON.stringify(f.positionals[0])}` };
  const model = f.values.get('--model');
  const out = f.values.get('--out');
  if (model === undefined) return { error: '--model DIR is required' };
  if (out === undefined) return { error: '--out PATH is required' };
  const format = oneOf('--format', f.values.get('--format') ?? (out.endsWith('.gguf') ? 'gguf' : 'hf'), [
    'hf',
    'gguf',
  ] as const);
  if (typeof format === 'object') return format;
  const quantize = oneOf('--quantize', f.values.get('--quantize') ?? 'none', [
    'none',
    'f16',
    'q8_0',
    'q4_0',
  ] as const);
  if (typeof quantize === 'object') return quantize;
  if (format === 'hf' && quantize !== 'none') return { error: '--quantize applies to --format gguf only' };
  const adapter = f.values.get('--adapter');
  return { model, out, format, quantize, force: f.switches.has('--force'), ...(adapter ? { adapter } : {}) };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('export', USAGE, args);
  const problem = await modelDirProblem(args.model);
  if (problem !== null) {
    console.error(`deltagate export: --model ${args.model} ${problem}`);
    return 1;
  }
  const adapter =
    args.adapter === undefined
      ? undefined
      : await readPeftDir(args.adapter, (await loadModelConfig(args.model)).config);
  const r = await exportModel({
    modelDir: args.model,
    adapter,
    out: args.out,
    format: args.format,
    quantize: args.quantize,
    force: args.force,
  });
  for (const w of r.warnings) console.error(`deltagate export: warning: ${w}`);
  const types = Object.entries(r.types)
    .map(([t, n]) => `${n} ${t}`)
    .join(', ');
  const merged = args.adapter === undefined ? '' : ` with ${args.adapter} merged`;
  console.log(
    `wrote ${r.out} (${r.format}${merged}): ${r.tensors} tensors (${types}), ${r.bytes} bytes of weights`,
  );
  return 0;
}
