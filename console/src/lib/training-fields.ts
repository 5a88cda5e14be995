/**
 * The training form's fields: the API's defaults and limits (StartTrainingInput.hyperparameters), so the form
 * shows what a job gets when a field is left alone and refuses out-of-range values before sending. A unit test
 * (test/console/training-fields.test.ts) holds these equal to the server's HYPERPARAMETER_DEFAULTS and limits.
 */
export interface NumberField {
  name: string;
  label: string;
  default: number;
  min: number;
  max: number;
  /** The upper bound is excluded ([min, max)). */
  maxExclusive?: boolean;
  integer: boolean;
  help: string;
  advanced?: boolean;
}

export const NUMBER_FIELDS: readonly NumberField[] = [
  {
    name: 'epochs',
    label: 'Epochs',
    default: 3,
    min: 1,
    max: 1000,
    integer: true,
    help: 'Passes over the dataset.',
  },
  {
    name: 'learningRate',
    label: 'Learning rate',
    default: 2e-4,
    min: 1e-9,
    max: 1,
    integer: false,
    help: 'Peak learning rate, (0, 1].',
  },
  { name: 'rank', label: 'LoRA rank', default: 8, min: 1, max: 256, integer: true, help: 'Rank of B·A.' },
  {
    name: 'alpha',
    label: 'LoRA alpha',
    default: 16,
    min: 1e-6,
    max: 4096,
    integer: false,
    help: 'scale = alpha / rank.',
  },
  {
    name: 'batchSize',
    label: 'Batch size',
    default: 4,
    min: 1,
    max: 256,
    integer: true,
    help: 'Examples per micro-batch.',
  },
  {
    name: 'maxSequenceLength',
    label: 'Max sequence length',
    default: 512,
    min: 2,
    max: 1_000_000,
    integer: true,
    help: "Tokens per example, at most the base model's context.",
  },
  {
    name: 'dropout',
    label: 'Dropout',
    default: 0.05,
    min: 0,
    max: 1,
    maxExclusive: true,
    integer: false,
    help: 'On the adapter input, [0, 1).',
    advanced: true,
  },
  {
    name: 'gradientAccumulationSteps',
    label: 'Gradient accumulation steps',
    default: 1,
    min: 1,
    max: 256,
    integer: true,
    help: 'Micro-batches per optimizer step.',
    advanced: true,
  },
  {
    name: 'warmupRatio',
    label: 'Warm-up ratio',
    default: 0.03,
    min: 0,
    max: 1,
    maxExclusive: true,
    integer: false,
    help: 'Fraction of steps warming up, [0, 1).',
    advanced: true,
  },
  {
    name: 'weightDecay',
    label: 'Weight decay',
    default: 0,
    min: 0,
    max: 1,
    integer: false,
    help: 'AdamW decoupled weight decay, [0, 1].',
    advanced: true,
  },
  {
    name: 'seed',
    label: 'Seed',
    default: 0,
    min: 0,
    max: 2147483647,
    integer: true,
    help: 'Seeds init, shuffling and dropout.',
    advanced: true,
  },
  {
    name: 'checkpointEverySteps',
    label: 'Checkpoint every N steps',
    default: 10,
    min: 0,
    max: 100000,
    integer: true,
    help: '0 = never; a killed job resumes from the last one.',
    advanced: true,
  },
];

export const TARGET_MODULES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export const QUANTIZATIONS = ['NF4', 'INT4', 'NONE'] as const;
export const DEFAULT_QUANTIZATION = 'NF4';
export const PROMOTE_POLICIES = ['IF_BETTER', 'ALWAYS', 'NEVER'] as const;

/** Why `raw` is not acceptable for `field` (null when it is). `contextLength` caps maxSequenceLength. */
export function fieldProblem(field: NumberField, raw: string, contextLength?: number): string | null {
  if (raw.trim() === '') return null; // empty: the default
  const v = Number(raw);
  const max = field.name === 'maxSequenceLength' && contextLength !== undefined ? contextLength : field.max;
  if (!Number.isFinite(v)) return `${field.label} must be a number`;
  if (field.integer && !Number.isInteger(v)) return `${field.label} must be a whole number`;
  const low = v < field.min;
  const high = field.maxExclusive ? v >= max : v > max;
  if (low || high) {
    const range = `[${field.min}, ${max}${field.maxExclusive ? ')' : ']'}`;
    return `${field.label} must be in ${range}`;
  }
  return null;
}
