/**
 * Logit error of the 4-bit bases against fp32 on real pretrained weights (../shared/models/stories260k):
 * the fp32 greedy continuation of BOS is fed (teacher-forced) through each base, and per position we compare
 * logits — max |Δ|, relative RMS, top-1 agreement and KL(fp32 ‖ 4-bit). Also bits/param and decode speed.
 * Used by bench/run.ts; runnable alone: `node --import tsx bench/lib/stories-error.ts`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadCheckpoint } from '../../src/engine/formats/checkpoint.js';
import { prepareWeights, type Quantization } from '../../src/engine/nn/weights.js';
import { BatchDecoder } from '../../src/inference/batch-decoder.js';
import { LoadedModel } from '../../src/inference/model.js';
import { linearBytes, linearParams } from './bench-model.js';

export const STORIES_DIR = join(process.cwd(), '..', 'shared', 'models', 'stories260k');

export interface QuantErrorRow {
  base: string;
  bitsPerParam: number;
  maxAbs: number;
  relRms: number;
  top1Agreement: number;
  meanKl: number;
  decodeTokensPerSecond: number;
}

async function logitsFor(
  model: LoadedModel,
  tokens: number[],
): Promise<{ logits: Float32Array[]; tokensPerSecond: number }> {
  const session = await model.session({ mode: 'base' });
  const dec = new BatchDecoder(session, model.config, [{ promptIds: [tokens[0]!] }], tokens.length + 1);
  const out = [(await dec.prefill())[0]!];
  const t0 = performance.now();
  for (let i = 1; i < tokens.length; i++) out.push((await dec.step([tokens[i]!]))[0]!);
  return { logits: out, tokensPerSecond: (tokens.length - 1) / ((performance.now() - t0) / 1000) };
}

function logSoftmax(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(x, (v) => v - lse);
}

function argmax(x: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
  return b;
}

export async function storiesQuantError(threads?: number, length = 128): Promise<QuantErrorRow[] | null> {
  if (!existsSync(join(STORIES_DIR, 'model.safetensors'))) return null;
  const ckpt = await loadCheckpoint(STORIES_DIR);
  const session = threads === undefined ? {} : { threads };
  const fp32 = LoadedModel.fromCheckpoint(ckpt, null, { session });
  // The fp32 greedy continuation is the text every base is teacher-forced through.
  const tokens = [1];
  {
    const s = await fp32.session({ mode: 'base' });
    const dec = new BatchDecoder(s, ckpt.config, [{ promptIds: [1] }], length + 1);
    let l = (await dec.prefill())[0]!;
    while (tokens.length < length) {
      tokens.push(argmax(l));
      l = (await dec.step([tokens.at(-1)!]))[0]!;
    }
  }
  const ref = await logitsFor(fp32, tokens);
  const rows: QuantErrorRow[] = [];
  const variants: [string, Quantization, number][] = [
    ['fp32', 'none', 0],
    ['NF4 (MatMulBnb4)', 'nf4', 0],
    ['int4 (MatMulNBits, acc 4)', 'int4', 4],
    ['int4 (MatMulNBits, acc 0)', 'int4', 0],
  ];
  for (const [base, quantize, level] of variants) {
    const model = LoadedModel.fromCheckpoint(ckpt, null, { quantize, int4AccuracyLevel: level, session });
    const q = await logitsFor(model, tokens);
    let maxAbs = 0;
    let se = 0;
    let ss = 0;
    let agree = 0;
    let kl = 0;
    q.logits.forEach((l, i) => {
      const r = ref.logits[i]!;
      for (let j = 0; j < l.length; j++) {
        maxAbs = Math.max(maxAbs, Math.abs(l[j]! - r[j]!));
        se += (l[j]! - r[j]!) ** 2;
        ss += r[j]! ** 2;
      }
      if (argmax(l) === argmax(r)) agree++;
      const lp = logSoftmax(r);
      const lq = logSoftmax(l);
      for (let j = 0; j < l.length; j++) kl += Math.exp(lp[j]!) * (lp[j]! - lq[j]!);
    });
    const weights = prepareWeights(ckpt, { quantize, int4AccuracyLevel: level });
    rows.push({
      base,
      bitsPerParam: (8 * linearBytes(weights)) / linearParams(ckpt.config),
      maxAbs,
      relRms: Math.sqrt(se / ss),
      top1Agreement: agree / q.logits.length,
      meanKl: kl / q.logits.length,
      decodeTokensPerSecond: q.tokensPerSecond,
    });
    await model.close();
  }
  await fp32.close();
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.table(await storiesQuantError(1));
}
