/**
 * `generate` (mutation) and `generateStream` (graphql-ws subscription): thin — the input goes to the
 * generation service (src/services/generation.ts) with the caller's Actor; errors map in one place
 * (error-mapping.ts). The service is found on the context's service bundle, set by src/main.ts.
 */
import { Arg, Ctx, Mutation, Resolver, Root, Subscription } from 'type-graphql';
import type { SubscribeResolverData } from 'type-graphql';
import type { Generation, GenerationChunk, GenerationService } from '../services/generation.js';
import { DeltagateError } from '../shared/errors.js';
import type { GraphQLContext } from './context.js';
import { GenerateInput, GenerationChunkType, GenerationType } from './types/generation.js';

/** The process's GenerationService; an API started without one answers INTERNAL_SERVER_ERROR, not a crash. */
export function generationOf(ctx: GraphQLContext): GenerationService {
  const g = (ctx.services as { generation?: GenerationService }).generation;
  if (!g) throw new DeltagateError('INTERNAL_SERVER_ERROR', 'generation is not available in this process');
  return g;
}

@Resolver(() => GenerationType)
export class GenerationResolver {
  @Mutation(() => GenerationType)
  async generate(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => GenerateInput) input: GenerateInput,
  ): Promise<Generation> {
    return generationOf(ctx).generate(ctx.actor, input);
  }

  @Subscription(() => GenerationChunkType, {
    description: 'Text deltas as they are generated; the last chunk carries the finishReason.',
    subscribe: ({
      args,
      context,
    }: SubscribeResolverData<unknown, { input: GenerateInput }, GraphQLContext>) =>
      generationOf(context).generateStream(context.actor, args.input),
  })
  generateStream(
    @Root() chunk: GenerationChunk,
    @Arg('input', () => GenerateInput) _input: GenerateInput,
  ): GenerationChunk {
    return chunk;
  }
}
