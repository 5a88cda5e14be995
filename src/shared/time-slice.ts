/**
 * Cooperative time slicing for long CPU work on the event loop (dataset validation, hashing, token counting):
 * the work checks `due` between small steps and, once its slice is used up, awaits `pause()`, which lets
 * every pending I/O callback, timer and request run before the work continues. One slice per job: a request
 * never holds the loop much longer than `sliceMs`, however large its input. A leaf module, like errors.ts.
 */
export const DEFAULT_SLICE_MS = 8;

export class TimeSlice {
  private deadline: number;

  constructor(private readonly sliceMs = DEFAULT_SLICE_MS) {
    this.deadline = performance.now() + sliceMs;
  }

  /** True once this slice's time is used up. */
  get due(): boolean {
    return performance.now() >= this.deadline;
  }

  /** Yields to the event loop (a full turn: I/O, timers, immediates) and starts a fresh slice. */
  async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.deadline = performance.now() + this.sliceMs;
  }

  /** `pause()` if the slice is used up; otherwise nothing (no promise turn). */
  maybePause(): Promise<void> | undefined {
    return this.due ? this.pause() : undefined;
  }
}
