/**
 * BaseModel: a registered base LLM (src/services/base-models.ts) with its Hugging Face config.json as JSON.
 */
import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import type { ServingQuantization } from '../../services/base-models.js';
import { JSONScalar, SafeIntScalar } from '../scalars.js';

/** GraphQL names → the service's values ('nf4', …). */
export const ServingQuantizationEnum = { NONE: 'none', NF4: 'nf4', INT4: 'int4' } as const;
registerEnumType(ServingQuantizationEnum, {
  name: 'ServingQuantization',
  description:
    'Base weights generation serves adapters on: NF4 (the QLoRA training grid, default), INT4 (the int4 training grid) or NONE (fp32).',
});

@ObjectType('BaseModel')
export class BaseModelType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String)
  architecture!: string;

  @Field(() => SafeIntScalar)
  parameterCount!: number;

  @Field(() => Int)
  contextLength!: number;

  @Field(() => String, { description: "How the stored weights are quantized: 'NONE' for float checkpoints." })
  quantization!: string;

  @Field(() => ServingQuantizationEnum, {
    description:
      'The grid generation runs this model on; adapters should be trained with the same quantization.',
  })
  servingQuantization!: ServingQuantization;

  @Field(() => JSONScalar, { description: 'The model config.json.' })
  config!: Record<string, unknown>;
}
