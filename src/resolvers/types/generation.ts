/**
 * GraphQL shapes of generation (PRODUCT.md): `GenerateInput`, `Generation`, `GenerationChunk`, `GenerationUsage`,
 * the `AdapterMode` / `FinishReason` enums. Shapes only: reference resolution, limits and usage counting are
 * src/services/generation.ts; the resolver is src/resolvers/generation-resolver.ts.
 */
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { AdapterVersionType } from './adapter.js';

export const AdapterModeEnum = { AUTO: 'AUTO', MERGED: 'MERGED', SIDELOAD: 'SIDELOAD' } as const;
export const FinishReasonEnum = { STOP: 'STOP', LENGTH: 'LENGTH' } as const;

registerEnumType(AdapterModeEnum, {
  name: 'AdapterMode',
  description:
    'How an adapter is applied: AUTO chooses; MERGED uses W + s·B·A; SIDELOAD adds s·(xA)B per row.',
});
registerEnumType(FinishReasonEnum, {
  name: 'FinishReason',
  description: 'STOP: end of sequence or a stop sequence; LENGTH: maxTokens reached.',
});

export const ChatRoleEnum = { system: 'system', user: 'user', assistant: 'assistant' } as const;
registerEnumType(ChatRoleEnum, { name: 'ChatRole', description: 'Who says a chat message.' });

@InputType('ChatMessageInput')
export class ChatMessageInput {
  @Field(() => ChatRoleEnum)
  role!: keyof typeof ChatRoleEnum;

  @Field(() => String)
  content!: string;
}

@InputType('GenerateInput')
export class GenerateInput {
  @Field(() => String, {
    nullable: true,
    description:
      '"name" (its production alias, else its latest version), "name@alias", "name@v3", or an AdapterVersion id; null = the base model.',
  })
  adapter?: string | null;

  @Field(() => ID, {
    nullable: true,
    description: 'Base model when adapter is null; default: the built-in one.',
  })
  baseModelId?: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'The prompt text. Exactly one of prompt, promptIds and messages.',
  })
  prompt?: string | null;

  @Field(() => [Int], {
    nullable: true,
    description: 'Token ids as they are (no BOS added), for base models without a tokenizer.',
  })
  promptIds?: number[] | null;

  @Field(() => [ChatMessageInput], {
    nullable: true,
    description:
      "A conversation, rendered with the base model's chat template; the assistant's next turn is generated.",
  })
  messages?: ChatMessageInput[] | null;

  @Field(() => Int, { nullable: true, description: 'Default 64; prompt + maxTokens must fit the context.' })
  maxTokens?: number | null;

  @Field(() => Float, { nullable: true, description: '0 or unset: greedy.' })
  temperature?: number | null;

  @Field(() => Float, { nullable: true })
  topP?: number | null;

  @Field(() => Int, { nullable: true })
  topK?: number | null;

  @Field(() => Int, { nullable: true })
  seed?: number | null;

  @Field(() => [String], { nullable: true })
  stop?: string[] | null;

  @Field(() => AdapterModeEnum, { nullable: true, description: 'Default AUTO.' })
  mode?: keyof typeof AdapterModeEnum | null;
}

// Named GenerationUsage: `Usage` is the customer's monthly counter type (src/resolvers/types/customer.ts).
@ObjectType('GenerationUsage', { description: 'Tokens of one generation.' })
export class GenerationUsageType {
  @Field(() => Int)
  promptTokens!: number;

  @Field(() => Int)
  completionTokens!: number;

  @Field(() => Int)
  totalTokens!: number;
}

@ObjectType('Generation')
export class GenerationType {
  @Field(() => String, { description: "The generated text ('' for a base model without a tokenizer)." })
  text!: string;

  @Field(() => [Int], { description: 'The generated token ids (an EOS that ended the generation included).' })
  tokenIds!: number[];

  @Field(() => FinishReasonEnum)
  finishReason!: keyof typeof FinishReasonEnum;

  @Field(() => GenerationUsageType)
  usage!: GenerationUsageType;

  @Field(() => AdapterVersionType, { nullable: true })
  adapterVersion!: AdapterVersionType | null;

  @Field(() => AdapterModeEnum)
  mode!: keyof typeof AdapterModeEnum;
}

@ObjectType('GenerationChunk')
export class GenerationChunkType {
  @Field(() => String, { description: 'The text generated since the previous chunk.' })
  text!: string;

  @Field(() => Int)
  index!: number;

  @Field(() => FinishReasonEnum, { nullable: true, description: 'Set on the last chunk only.' })
  finishReason!: keyof typeof FinishReasonEnum | null;
}
