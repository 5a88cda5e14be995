/**
 * TrainingJob and its progress/loss types (read side; startTraining, cancel and the progress subscription
 * arrive with issue 5 and reuse these).
 */
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { connectionType } from '../pagination.js';
import { DateTimeScalar, JSONScalar } from '../scalars.js';
import { TrainingJobStatusEnum } from './enums.js';

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

  @Field(() => JSONScalar)
  hyperparameters!: Record<string, unknown>;

  @Field(() => TrainingProgressType, { nullable: true })
  progress!: TrainingProgressType | null;

  @Field(() => [LossPointType])
  lossHistory!: LossPointType[];

  @Field(() => String, { nullable: true })
  error!: string | null;

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
