/**
 * A running job's progress in SQL, written on a clock rather than per step: used by the training handler
 * (job-handler.ts) and the derived-job handler (derive-handler.ts). The progress bus gets every event; SQL gets
 * the newest snapshot at most once per interval, plus on `flush()`. Not the bus itself: src/queue.
 */
import type { LossPoint, TrainingProgress } from '../db/repositories/training-jobs.js';

export interface ProgressSnapshot {
  progress: TrainingProgress;
  history: LossPoint[];
}

/**
 * Writes a running job's progress to SQL on a clock: the newest snapshot at most once per `intervalMs`
 * (a write in flight is never queued behind: the newest snapshot replaces any unwritten one), and at once on
 * `flush()` (checkpoints, the end). So SQL is never more than about one interval plus one write behind the
 * job, however slow a write is, and a slow database cannot make writes pile up.
 */
export class ProgressWriter {
  private latest: ProgressSnapshot | null = null;
  private written: ProgressSnapshot | null = null;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private lastWriteAt = -Infinity;

  constructor(
    private readonly intervalMs: number,
    private readonly write: (snapshot: ProgressSnapshot) => Promise<void>,
  ) {}

  offer(snapshot: ProgressSnapshot): void {
    this.latest = snapshot;
    this.kick();
  }

  private kick(): void {
    if (this.inFlight !== null || this.latest === this.written) return;
    const wait = this.lastWriteAt + this.intervalMs - performance.now();
    if (wait > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, wait);
      return;
    }
    // Due now: write at once (a step may report before a timer delayed by a busy event loop fires).
    clearTimeout(this.timer);
    this.timer = undefined;
    this.startWrite();
  }

  private startWrite(): void {
    const snapshot = this.latest!;
    this.lastWriteAt = performance.now();
    this.inFlight = this.write(snapshot).finally(() => {
      this.inFlight = null;
      this.written = snapshot;
      this.kick();
    });
  }

  /** Writes the newest snapshot now (after a write in flight) and waits for it. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.inFlight !== null) await this.inFlight;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.latest === null || this.latest === this.written) return;
    this.startWrite();
    await this.inFlight;
  }
}
