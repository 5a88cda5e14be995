/**
 * `generate` (mutation) and `generateStream` (graphql-ws subscription): thin — the input goes to the
 * generation service (src/services/generation.ts) with the caller's Actor; errors map in one place
 * (error-mapping.ts). The service is the context's `services.generation` (src/services/index.ts).
 */
import { Arg, Ctx, Mutation, Resolver, Root, Subscription } from 'type-graphql';
import type { SubscribeResolverData } from 'type-graphql';
import type { Generation, GenerationChunk } from '../services/generation.js';
import type { GraphQLContext } from './context.js';
import { GenerateInput, GenerationChunkType, GenerationType } from './types/generation.js';

@Resolver(() => GenerationType)
export class GenerationResolver {
  @Mutation(() => GenerationType)
  async generate(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => GenerateInput) input: GenerateInput,
  ): Promise<Generation> {
    return ctx.services.generation.generate(ctx.actor, input, { signal: ctx.signal });
  }

  @Subscription(() => GenerationChunkType, {
    description: 'Text deltas as they are generated; the last chunk carries the finishReason.',
    subscribe: ({
      args,
      context,
    }: SubscribeResolverData<unknown, { input: GenerateInput }, GraphQLContext>) =>
      context.services.generation.generateStream(context.actor, args.input),
  })
  generateStream(
    @Root() chunk: GenerationChunk,
    @Arg('input', () => GenerateInput) _input: GenerateInput,
  ): GenerationChunk {
    return chunk;
  }
}
