/**
 * AUTO's choice between side-loaded and merged weights, made per running batch (dLoRA's idea): when every
 * decode row of the batch has used one adapter X (in AUTO or MERGED mode) for `afterSteps` consecutive steps,
 * X's merged weights are worth building and serving; as soon as the batch mixes again, rows go back to
 * side-loading. Pure bookkeeping: the scheduler builds sessions and logs the switches this returns.
 */
import type { ServeMode } from './sequence.js';

export interface PolicyRow {
  versionId: string | null;
  mode: ServeMode;
}

export type PolicyEvent =
  | { kind: 'build'; versionId: string }
  | { kind: 'merge'; versionId: string; afterSteps: number }
  | { kind: 'unmerge'; versionId: string; reason: string };

export class AutoMergePolicy {
  /** The adapter whose AUTO rows are served merged now, or null (side-load). */
  mergedFor: string | null = null;
  private streakVersion: string | null = null;
  private streak = 0;

  constructor(readonly afterSteps: number) {}

  /**
   * Called after each decode step with its rows; `ready(v)` says whether v's merged session exists.
   * Returns what to do: build a merged session, switch to it, or switch back.
   */
  observe(rows: readonly PolicyRow[], ready: (versionId: string) => boolean): PolicyEvent[] {
    const events: PolicyEvent[] = [];
    const versions = new Set(rows.map((r) => r.versionId));
    const only = versions.size === 1 ? [...versions][0]! : null;
    const dominant = only !== null && rows.every((r) => r.mode !== 'SIDELOAD') ? only : null;
    if (dominant !== null && dominant === this.streakVersion) this.streak++;
    else {
      this.streakVersion = dominant;
      this.streak = dominant === null ? 0 : 1;
    }
    if (this.mergedFor !== null && dominant !== this.mergedFor && rows.length > 0) {
      events.push({ kind: 'unmerge', versionId: this.mergedFor, reason: 'the batch mixes adapters again' });
      this.mergedFor = null;
    }
    if (dominant !== null && this.mergedFor !== dominant && this.streak >= this.afterSteps) {
      if (ready(dominant)) {
        this.mergedFor = dominant;
        events.push({ kind: 'merge', versionId: dominant, afterSteps: this.streak });
      } else events.push({ kind: 'build', versionId: dominant });
    }
    return events;
  }
}
