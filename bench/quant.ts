/**
 * Quantized base weights: bits per parameter, reconstruction error on Gaussian weights, and M=1 / M=256
 * timings of fp32 MatMul vs NF4 (MatMulBnb4) vs int4 (MatMulNBits) on 4096×4096. The ceilings these are read
 * against come from bench/ceilings.ts. Run: `node --import tsx bench/quant.ts` (≈ 30 s on 2 cores).
 */
import { dequantizeNf4, nf4BitsPerParameter, quantizeNf4 } from '../src/engine/quant/nf4.js';
import { dequantizeInt4, int4BitsPerParameter, quantizeInt4 } from '../src/engine/quant/int4.js';
import { bnb4AndNBitsRows, defaultThreads, printTable } from './ceilings.js';

/** Gaussian weights (Box–Muller, fixed seed), the distribution NF4 is built for. */
function gaussian(count: number, std: number): Float32Array {
  let s = 12345;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = std * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

function relRms(w: Float32Array, dq: Float32Array): number {
  let se = 0;
  let ss = 0;
  for (let i = 0; i < w.length; i++) {
    se += (dq[i]! - w[i]!) ** 2;
    ss += w[i]! ** 2;
  }
  return Math.sqrt(se / ss);
}

async function main(): Promise<void> {
  const threads = Number(process.env.THREADS ?? defaultThreads());
  const [n, k] = [1024, 1024];
  const w = gaussian(n * k, 0.02);
  const nf4 = quantizeNf4(w, n, k);
  const rows: Record<string, string | number>[] = [
    {
      format: 'NF4 b64 + double-quant absmax',
      'bits/param': nf4BitsPerParameter(nf4),
      'rel RMS error': relRms(w, dequantizeNf4(nf4)),
    },
  ];
  for (const blockSize of [32, 64, 128]) {
    for (const compactScales of [false, true]) {
      const q = quantizeInt4(w, n, k, { blockSize, compactScales });
      rows.push({
        format: `int4 b${blockSize} ${compactScales ? 'DQ scales' : 'fp32 scales'}`,
        'bits/param': int4BitsPerParameter(q),
        'rel RMS error': relRms(w, dequantizeInt4(q)),
      });
    }
  }
  console.log(`Storage and error (${n}×${k} N(0, 0.02²) weights):`);
  printTable(rows);
  console.log(`\nTimings, 4096×4096 weight, ${threads} threads:`);
  printTable(await bnb4AndNBitsRows(threads));
}

await main();
