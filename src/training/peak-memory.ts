/**
 * Peak resident memory of a phase of the process, from the kernel's high-water mark: on Linux, writing 5 to
 * /proc/self/clear_refs resets VmHWM, so the training steps' peak is measured apart from the model load
 * (a sampling timer cannot see inside a synchronous ORT run). Elsewhere it falls back to the lifetime peak.
 * Used by trainer.ts for metrics.json; bench/train.ts reads the same numbers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

function vmHwmBytes(): number | null {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Starts a measured phase; returns whether the kernel peak could be reset (false: lifetime peak). */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** The peak RSS since the last successful reset (or process start). */
export function peakRssBytes(): number {
  return vmHwmBytes() ?? process.resourceUsage().maxRSS * 1024;
}

let gcFn: (() => void) | null | undefined;

/**
 * Runs a full V8 garbage collection now (enabling `gc` on first use). Large ArrayBuffers that are already
 * unreachable — the fp32 checkpoint after quantizing, the emitted ONNX bytes, the previous step's feeds — are
 * otherwise freed whenever V8 next decides to collect, which can land on top of a step's activation peak.
 * A full GC of the trainer's small heap costs milliseconds against seconds per step. No-op if unavailable.
 */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

/**
 * collectGarbage, then lets the event loop run the finalizers that actually release external memory (Node
 * frees many ArrayBuffer backing stores in callbacks after the GC itself), twice over. Without the yield,
 * memory about to be freed is counted as live — and a peak reset taken then starts from that inflated RSS.
 */
export async function settleMemory(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
