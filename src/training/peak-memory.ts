/**
 * Peak resident memory of a phase of the process, from the kernel's high-water mark: on Linux, writing 5 to
 * /proc/self/clear_refs resets VmHWM, so the training steps' peak is measured apart from the model load
 * (a sampling timer cannot see inside a synchronous ORT run). Elsewhere it falls back to the lifetime peak.
 * Used by trainer.ts for metrics.json; bench/train.ts reads the same numbers.
 */
import { readFileSync, writeFileSync } from 'node:fs';

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
