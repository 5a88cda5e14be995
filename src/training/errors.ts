/**
 * Named, expected failures of a training run (stable codes via the shared DeltagateError classes).
 * Thrown where the context is known — data preparation, option parsing, checkpoint loading — and always
 * before any graph is built when the cause is the user's input. Workers map them to UnrecoverableError.
 */
import { BadInputError, DeltagateError } from '../shared/errors.js';

/** The dataset has no usable rows (empty, all invalid, or nothing left to learn after truncation). */
export class TrainingDataError extends BadInputError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(message, { details });
  }
}

/** An option is out of range or inconsistent with the model (rank ≤ 0, unknown target module, …). */
export class TrainingOptionsError extends BadInputError {
  constructor(message: string) {
    super(message);
  }
}

/** A run was cancelled through its AbortSignal between two steps. */
export class TrainingCancelledError extends DeltagateError {
  constructor(readonly step: number) {
    super('CONFLICT', `training cancelled after step ${step}`, { details: { step } });
  }
}

/** A checkpoint exists but cannot be used for this run (other model, rank, or data). */
export class CheckpointMismatchError extends BadInputError {
  constructor(message: string) {
    super(message);
  }
}
