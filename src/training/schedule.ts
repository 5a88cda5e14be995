/**
 * Learning-rate schedule: linear warm-up, then cosine decay to zero (the shape of Hugging Face's
 * `get_cosine_schedule_with_warmup`). A pure function of the optimizer step, so resume needs no state.
 * The optimizer that consumes it is `adamw.ts`; the loop that advances the step is `trainer.ts`.
 */

export interface ScheduleOptions {
  peakLr: number;
  totalSteps: number;
  warmupSteps: number;
}

/** Warm-up steps for a ratio of the total, as HF computes them (ceil). */
export function warmupStepsFor(totalSteps: number, warmupRatio: number): number {
  return Math.ceil(totalSteps * warmupRatio);
}

/**
 * The learning rate of optimizer step `step` (0-based). Warm-up counts from 1 so the first step already
 * moves the weights (HF's schedule spends its first step at lr 0).
 */
export function learningRateAt(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.peakLr * (step + 1)) / (o.warmupSteps + 1);
  const decaySteps = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / decaySteps);
  return o.peakLr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
