/**
 * `deltagate generate --model DIR [--adapter PEFT_DIR] [--mode merged|sideload] (--prompt TEXT | --prompt-ids
 * "1 2 3") [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--stop S]… [--quantize
 * none|nf4|int4] [--threads N] [--json]`. Streams text to stdout, or with --json prints one JSON object as the
 * last line. Only argument parsing and printing: generation is src/inference/engine.ts. Exit: 0 ok, 2 usage.
 */
import { readPeftDir } from '../engine/formats/peft.js';
import type { Quantization } from '../engine/nn/weights.js';
import { Engine, type GenerateRequest } from '../inference/engine.js';
import { usageExit } from './command-kit.js';

export const summary = 'generate text with a base model (and optionally a PEFT LoRA adapter)';

const USAGE = `usage: deltagate generate --model DIR [--adapter PEFT_DIR] [--mode merged|sideload]
         (--prompt TEXT | --prompt-ids "1 2 3") [--max-tokens N] [--temperature T] [--top-k K]
         [--top-p P] [--seed S] [--stop S]... [--quantize none|nf4|int4] [--threads N] [--json]`;

export interface GenerateArgs {
  model: string;
  adapter?: string;
  mode: 'merged' | 'sideload';
  prompt?: string;
  promptIds?: number[];
  maxTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop: string[];
  quantize: Quantization;
  threads?: number;
  json: boolean;
}

export type ParsedArgs = GenerateArgs | { error: string } | { help: true };

const num = (v: string): number => (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v.trim()) ? Number(v) : NaN);

export function parseArgs(argv: string[]): ParsedArgs {
  const out: Partial<GenerateArgs> & { stop: string[] } = { stop: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const take = (): string | undefined => inline ?? argv[++i];
    const need = (what: string): string | { error: string } => {
      const v = take();
      return v === undefined ? { error: `${flag} needs ${what}` } : v;
    };
    const int = (what: string, min: number): number | { error: string } => {
      const v = need(what);
      if (typeof v !== 'string') return v;
      const n = num(v);
      return Number.isSafeInteger(n) && n >= min
        ? n
        : { error: `${flag} needs ${what}, got ${JSON.stringify(v)}` };
    };
    const float = (what: string): number | { error: string } => {
      const v = need(what);
      if (typeof v !== 'string') return v;
      const n = num(v);
      return Number.isFinite(n) ? n : { error: `${flag} needs ${what}, got ${JSON.stringify(v)}` };
    };
    let r: string | number | { error: string } | undefined;
    switch (flag) {
      case '--help':
      case '-h':
        return { help: true };
      case '--model':
        r = out.model = need('a directory') as string;
        break;
      case '--adapter':
        r = out.adapter = need('a PEFT directory') as string;
        break;
      case '--mode': {
        r = need('merged or sideload');
        if (r === 'merged' || r === 'sideload') out.mode = r;
        else if (typeof r === 'string')
          return { error: `--mode must be merged or sideload, got ${JSON.stringify(r)}` };
        break;
      }
      case '--prompt':
        r = out.prompt = need('text') as string;
        break;
      case '--prompt-ids': {
        r = need('token ids');
        if (typeof r !== 'string') break;
        const parts = r
          .trim()
          .split(/[\s,]+/)
          .filter(Boolean);
        const ids = parts.map(num);
        if (parts.length === 0 || !ids.every((x) => Number.isSafeInteger(x) && x >= 0)) {
          return { error: `--prompt-ids needs non-negative integer ids, got ${JSON.stringify(r)}` };
        }
        out.promptIds = ids;
        break;
      }
      case '--max-tokens':
        r = out.maxTokens = int('a positive integer', 1) as number;
        break;
      case '--temperature':
        r = out.temperature = float('a number ≥ 0') as number;
        break;
      case '--top-k':
        r = out.topK = int('a positive integer', 1) as number;
        break;
      case '--top-p':
        r = out.topP = float('a number in (0, 1]') as number;
        break;
      case '--seed':
        r = out.seed = int('an integer', Number.MIN_SAFE_INTEGER) as number;
        break;
      case '--threads':
        r = out.threads = int('a positive integer', 1) as number;
        break;
      case '--stop': {
        r = need('a string');
        if (typeof r === 'string') out.stop.push(r);
        break;
      }
      case '--quantize': {
        r = need('none, nf4 or int4');
        if (r === 'none' || r === 'nf4' || r === 'int4') out.quantize = r;
        else if (typeof r === 'string')
          return { error: `--quantize must be none, nf4 or int4, got ${JSON.stringify(r)}` };
        break;
      }
      case '--json':
        if (inline !== undefined) return { error: '--json takes no value' };
        out.json = true;
        break;
      default:
        return { error: `unknown argument ${JSON.stringify(arg)}` };
    }
    if (typeof r === 'object') return r;
  }
  if (out.model === undefined) return { error: '--model DIR is required' };
  if ((out.prompt === undefined) === (out.promptIds === undefined)) {
    return { error: 'exactly one of --prompt and --prompt-ids is required' };
  }
  if (out.mode !== undefined && out.adapter === undefined) return { error: '--mode needs --adapter' };
  return { mode: 'merged', maxTokens: 64, quantize: 'none', json: false, ...out } as GenerateArgs;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('generate', USAGE, args);
  const engine = await Engine.load(args.model, {
    quantize: args.quantize,
    session: args.threads === undefined ? {} : { threads: args.threads },
  });
  try {
    const adapter = args.adapter === undefined ? undefined : await readPeftDir(args.adapter, engine.config);
    const req: GenerateRequest = {
      ...(args.promptIds ? { promptIds: args.promptIds } : { prompt: args.prompt }),
      ...(adapter ? { adapter, mode: args.mode } : {}),
      maxTokens: args.maxTokens,
      temperature: args.temperature,
      topK: args.topK,
      topP: args.topP,
      seed: args.seed,
      stop: args.stop,
    };
    const streaming = !args.json && engine.tokenizer !== null;
    const result = await engine.generate(req, streaming ? (d) => process.stdout.write(d) : undefined);
    if (args.json) {
      const { promptIds, tokenIds, text, finishReason, usage } = result;
      process.stdout.write(`${JSON.stringify({ promptIds, tokenIds, text, finishReason, usage })}\n`);
    } else if (streaming) process.stdout.write('\n');
    // No tokenizer (e.g. stories260k): the ids are the output.
    else process.stdout.write(`${result.tokenIds.join(' ')}\n`);
    return 0;
  } finally {
    await engine.close();
  }
}
