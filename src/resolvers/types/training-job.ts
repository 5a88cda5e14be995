/**
 * GraphQL shapes of training jobs: TrainingJob with its progress and loss points, the TrainingJobProgress
 * subscription event, and the startTraining input (TrainingHyperparameters, the Quantization enum). Shapes
 * only: the rules are src/services/training-runner.ts; the resolver is src/resolvers/training-job-resolver.ts.
 */
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { connectionType } from '../pagination.js';
import { DateTimeScalar, JSONScalar } from '../scalars.js';
import { JobKindEnum, TrainingJobStatusEnum } from './enums.js';

@ObjectType('TrainingProgress')
export class TrainingProgressType {
  @Field(() => Int)
  step!: number;

  @Field(() => Int)
  totalSteps!: number;

  @Field(() => Float)
  epoch!: number;

  @Field(() => Float, { nullable: true })
  loss!: number | null;

  @Field(() => Float, { nullable: true })
  evalLoss!: number | null;

  @Field(() => Float, { nullable: true })
  learningRate!: number | null;

  @Field(() => Float, { nullable: true })
  tokensPerSecond!: number | null;

  @Field(() => Float, { nullable: true })
  etaSeconds!: number | null;
}

@ObjectType('LossPoint')
export class LossPointType {
  @Field(() => Int)
  step!: number;

  @Field(() => Float)
  loss!: number;

  @Field(() => Float, { nullable: true })
  evalLoss?: number | null;
}

@ObjectType('TrainingJob')
export class TrainingJobType {
  @Field(() => ID)
  id!: string;

  @Field(() => TrainingJobStatusEnum)
  status!: keyof typeof TrainingJobStatusEnum;

  @Field(() => JobKindEnum, {
    description: 'TRAINING, or SHRINK / MERGE / EXPORT for jobs that derive or export a version.',
  })
  kind!: keyof typeof JobKindEnum;

  @Field(() => JSONScalar, {
    nullable: true,
    description:
      'What a SHRINK / MERGE / EXPORT job does, as queued (operation, sources with weights, method, rank, energy; or versionId, format, quantize); null for training.',
  })
  spec!: Record<string, unknown> | null;

  @Field(() => JSONScalar, { description: 'Training hyperparameters after defaults; {} for other kinds.' })
  hyperparameters!: Record<string, unknown>;

  @Field(() => TrainingProgressType, { nullable: true })
  progress!: TrainingProgressType | null;

  @Field(() => [LossPointType])
  lossHistory!: LossPointType[];

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field(() => Int, { description: 'Runs started (a worker that died and a retry each add one).' })
  attempts!: number;

  @Field(() => String, { nullable: true })
  idempotencyKey!: string | null;

  @Field(() => PromotePolicyEnum, { description: 'What success does with the `production` alias.' })
  promote!: keyof typeof PromotePolicyEnum;

  @Field(() => DateTimeScalar)
  createdAt!: string;

  @Field(() => DateTimeScalar, { nullable: true })
  startedAt!: string | null;

  @Field(() => DateTimeScalar, { nullable: true })
  finishedAt!: string | null;

  @Field(() => DateTimeScalar)
  updatedAt!: string;
}

export const TrainingJobConnection = connectionType('TrainingJob', TrainingJobType);

@ObjectType('TrainingJobProgress', {
  description: 'One trainingJobProgress event: a full snapshot, per step, eval and status change.',
})
export class TrainingJobProgressType extends TrainingProgressType {
  @Field(() => ID)
  jobId!: string;

  @Field(() => TrainingJobStatusEnum)
  status!: keyof typeof TrainingJobStatusEnum;

  @Field(() => String, { nullable: true })
  message!: string | null;
}

export const PromotePolicyEnum = { ALWAYS: 'ALWAYS', IF_BETTER: 'IF_BETTER', NEVER: 'NEVER' } as const;
registerEnumType(PromotePolicyEnum, {
  name: 'PromotePolicy',
  description:
    "What a successful job does with the adapter's `production` alias, which the bare adapter name serves.",
  valuesConfig: {
    ALWAYS: { description: 'Point `production` at the new version.' },
    IF_BETTER: {
      description:
        'Point `production` at the new version only if its held-out eval loss is lower than that of the version the name serves now (or the adapter had no version); otherwise keep serving that one. The default.',
    },
    NEVER: { description: 'Leave aliases alone.' },
  },
});

export const QuantizationEnum = { NF4: 'NF4', INT4: 'INT4', NONE: 'NONE' } as const;
registerEnumType(QuantizationEnum, {
  name: 'Quantization',
  description:
    'Frozen base weights while training: NF4 (QLoRA, default), INT4 (the fast-decode grid) or NONE (fp32).',
});

@InputType('TrainingHyperparameters', { description: 'Every field optional, with defaults that work.' })
export class TrainingHyperparametersInput {
  @Field(() => Int, { nullable: true, description: 'LoRA rank, 1-256 (8).' })
  rank?: number | null;

  @Field(() => Float, { nullable: true, description: 'LoRA alpha (16): scale = alpha / rank.' })
  alpha?: number | null;

  @Field(() => Float, { nullable: true, description: 'Dropout on the adapter input, [0, 1) (0.05).' })
  dropout?: number | null;

  @Field(() => [String], { nullable: true, description: 'Projections to adapt (all seven).' })
  targetModules?: string[] | null;

  @Field(() => Int, { nullable: true, description: '1-1000 (3).' })
  epochs?: number | null;

  @Field(() => Float, { nullable: true, description: 'Peak learning rate, (0, 1] (2e-4).' })
  learningRate?: number | null;

  @Field(() => Int, { nullable: true, description: 'Examples per micro-batch, 1-256 (4).' })
  batchSize?: number | null;

  @Field(() => Int, { nullable: true, description: 'Micro-batches per optimizer step, 1-256 (1).' })
  gradientAccumulationSteps?: number | null;

  @Field(() => Int, { nullable: true, description: "Tokens per example, ≤ the base model's context (512)." })
  maxSequenceLength?: number | null;

  @Field(() => Float, { nullable: true, description: 'Fraction of steps warming up, [0, 1) (0.03).' })
  warmupRatio?: number | null;

  @Field(() => Float, { nullable: true, description: 'AdamW decoupled weight decay, [0, 1] (0).' })
  weightDecay?: number | null;

  @Field(() => Int, { nullable: true, description: 'Seeds init, shuffling and dropout (0).' })
  seed?: number | null;

  @Field(() => QuantizationEnum, { nullable: true, description: 'Frozen base format (NF4).' })
  quantization?: keyof typeof QuantizationEnum | null;

  @Field(() => Int, { nullable: true, description: 'Checkpoint to storage every N steps; 0 = never (10).' })
  checkpointEverySteps?: number | null;
}

@InputType('StartTrainingInput')
export class StartTrainingInput {
  @Field(() => ID)
  adapterId!: string;

  @Field(() => ID)
  datasetId!: string;

  @Field(() => ID, {
    nullable: true,
    description: 'A READY dataset of the same format (recorded with the job).',
  })
  validationDatasetId?: string | null;

  @Field(() => TrainingHyperparametersInput, { nullable: true })
  hyperparameters?: TrainingHyperparametersInput | null;

  @Field(() => String, {
    nullable: true,
    description:
      'The same key (per customer) answers the same job however often it is sent; the same key with a different input is CONFLICT.',
  })
  idempotencyKey?: string | null;

  @Field(() => PromotePolicyEnum, {
    nullable: true,
    description: 'What success does with the `production` alias (default IF_BETTER).',
  })
  promote?: keyof typeof PromotePolicyEnum | null;
}
