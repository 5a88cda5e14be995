/**
 * BaseModel: a registered base LLM (src/services/base-models.ts) with its Hugging Face config.json as JSON.
 */
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { JSONScalar, SafeIntScalar } from '../scalars.js';

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

  @Field(() => JSONScalar, { description: 'The model config.json.' })
  config!: Record<string, unknown>;
}
