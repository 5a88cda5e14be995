/**
 * `deltagate train`: fine-tune a LoRA adapter on a JSONL file and write a PEFT directory (+ metrics.json).
 * Argument parsing and the stderr progress line only; the run itself is src/training/trainer.ts
 * (`runTraining`). Exit codes: 0 trained, 1 failed (bad data, model, I/O), 2 usage error, 130 cancelled (SIGINT).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLinearModule, type LinearModule } from '../engine/formats/hf-config.js';
import type { Quantization } from '../engine/nn/weights.js';
import { DirectoryCheckpointStore } from '../training/checkpoint-store.js';
import type { DatasetFormat } from '../training/dataset-rows.js';
import { TrainingCancelledError } from '../training/errors.js';
import type { TrainingOptions } from '../training/options.js';
import { runTraining, type TrainingEvent } from '../training/trainer.js';
import { usageExit } from './command-kit.js';

export const summary = 'fine-tune a LoRA adapter (QLoRA) on a JSONL dataset, writing a PEFT directory';

const USAGE = `usage: deltagate train --model DIR --data FILE.jsonl --out DIR [options]
  --format prompt_completion|chat|text   (default prompt_completion)
  --rank R (8)  --alpha A (16)  --dropout P (0.05)  --target-modules q_proj,k_proj,... (all seven)
  --epochs E (3)  --lr LR (2e-4)  --batch-size B (4)  --grad-accum G (1)  --max-seq-len L (512)
  --warmup-ratio W (0.03)  --weight-decay D (0)  --max-grad-norm N (1)  --validation-split F
  --quantize nf4|int4|none (nf4)  --gradient-checkpointing on|off (on)  --seed S (0)  --threads N
  --checkpoint-every N (checkpoints go to OUT/checkpoints)  --resume DIR (a checkpoints directory)`;

const FORMATS: Record<string, DatasetFormat> = {
  prompt_completion: 'PROMPT_COMPLETION',
  chat: 'CHAT',
  text: 'TEXT',
};

export interface TrainArgs {
  options: Omit<TrainingOptions, 'data'> & { outDir: string };
  dataPath: string;
  resumeDir?: string;
}

export type ParsedArgs = TrainArgs | { error: string } | { help: true };

const NUMERIC: Record<string, { key: keyof TrainingOptions; int: boolean }> = {
  '--rank': { key: 'rank', int: true },
  '--alpha': { key: 'alpha', int: false },
  '--dropout': { key: 'dropout', int: false },
  '--epochs': { key: 'epochs', int: true },
  '--lr': { key: 'learningRate', int: false },
  '--batch-size': { key: 'batchSize', int: true },
  '--grad-accum': { key: 'gradAccum', int: true },
  '--max-seq-len': { key: 'maxSeqLen', int: true },
  '--warmup-ratio': { key: 'warmupRatio', int: false },
  '--weight-decay': { key: 'weightDecay', int: false },
  '--max-grad-norm': { key: 'maxGradNorm', int: false },
  '--validation-split': { key: 'validationSplit', int: false },
  '--seed': { key: 'seed', int: true },
  '--checkpoint-every': { key: 'checkpointEvery', int: true },
  '--threads': { key: 'threads', int: true },
};

export function parseArgs(argv: string[]): ParsedArgs {
  const o: Record<string, unknown> = {};
  let model: string | undefined;
  let data: string | undefined;
  let out: string | undefined;
  let resumeDir: string | undefined;
  let format: DatasetFormat = 'PROMPT_COMPLETION';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    if (flag === '--help' || flag === '-h') return { help: true };
    const v = inline ?? argv[++i];
    if (v === undefined || v === '' || (inline === undefined && v.startsWith('--'))) {
      return { error: `${flag} needs a value` };
    }
    const num = NUMERIC[flag];
    if (num) {
      const x = Number(v);
      if (!Number.isFinite(x) || (num.int && !Number.isInteger(x))) {
        return { error: `${flag} needs ${num.int ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}` };
      }
      o[num.key] = x;
      continue;
    }
    switch (flag) {
      case '--gradient-checkpointing':
        if (v !== 'on' && v !== 'off')
          return { error: `--gradient-checkpointing must be on or off, got ${JSON.stringify(v)}` };
        o.gradientCheckpointing = v === 'on';
        break;
      case '--model':
        model = v;
        break;
      case '--data':
        data = v;
        break;
      case '--out':
        out = v;
        break;
      case '--resume':
        resumeDir = v;
        break;
      case '--format': {
        const f = FORMATS[v.toLowerCase()];
        if (!f)
          return { error: `--format must be prompt_completion, chat or text, got ${JSON.stringify(v)}` };
        format = f;
        break;
      }
      case '--quantize':
        if (!['nf4', 'int4', 'none'].includes(v))
          return { error: `--quantize must be nf4, int4 or none, got ${JSON.stringify(v)}` };
        o.quantize = v as Quantization;
        break;
      case '--target-modules': {
        const mods = v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = mods.find((m) => !isLinearModule(m));
        if (bad !== undefined || mods.length === 0)
          return { error: `unknown target module ${JSON.stringify(bad ?? v)}` };
        o.targetModules = mods as LinearModule[];
        break;
      }
      default:
        return { error: `unknown argument ${JSON.stringify(arg)}` };
    }
  }
  if (model === undefined) return { error: '--model DIR is required' };
  if (data === undefined) return { error: '--data FILE.jsonl is required' };
  if (out === undefined) return { error: '--out DIR is required' };
  return {
    options: { ...(o as Partial<TrainingOptions>), modelDir: model, format, outDir: out },
    dataPath: data,
    ...(resumeDir === undefined ? {} : { resumeDir }),
  };
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60)}s` : `${s.toFixed(1)}s`;
}

export function progressLine(e: TrainingEvent): string {
  if (e.type === 'eval')
    return `eval  step ${e.step} epoch ${e.epoch + 1} eval_loss ${e.evalLoss.toFixed(4)}`;
  return (
    `step ${e.step}/${e.totalSteps} epoch ${e.epoch + 1} loss ${e.loss.toFixed(4)} lr ${e.learningRate.toExponential(2)} ` +
    `grad_norm ${e.gradNorm.toFixed(3)} tok/s ${e.tokensPerSecond.toFixed(0)} eta ${fmtSeconds(e.etaSeconds)}`
  );
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('train', USAGE, args);
  const content = await readFile(args.dataPath);
  const checkpointDir = args.resumeDir ?? join(args.options.outDir, 'checkpoints');
  const useStore = args.resumeDir !== undefined || (args.options.checkpointEvery ?? 0) > 0;
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const { metrics } = await runTraining(
      { ...args.options, data: { content }, resume: args.resumeDir !== undefined },
      {
        onProgress: (e) => console.error(progressLine(e)),
        signal: controller.signal,
        ...(useStore ? { checkpointStore: new DirectoryCheckpointStore(checkpointDir) } : {}),
      },
    );
    const d = metrics.data;
    console.error(
      `trained ${metrics.steps} steps on ${d.trainExamples} examples (${d.truncated} truncated, ${d.dropped} dropped); ` +
        `final loss ${metrics.finalLoss?.toFixed(4)}${metrics.evalLoss === null ? '' : `, eval loss ${metrics.evalLoss.toFixed(4)}`}; ` +
        `${metrics.tokensPerSecond.toFixed(0)} tok/s; peak RSS ${(metrics.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    console.log(`wrote PEFT adapter and metrics.json to ${args.options.outDir}`);
    return 0;
  } catch (err) {
    if (err instanceof TrainingCancelledError) {
      console.error(
        `deltagate train: cancelled after step ${err.step}${useStore ? `; resume with --resume ${checkpointDir}` : ''}`,
      );
      return 130;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
