/**
 * `generate` (mutation) and `generateStream` (graphql-ws subscription): thin — the input goes to the
 * generation service (src/services/generation.ts) with the caller's Actor; errors map in one place
 * (error-mapping.ts). The service is the context's `services.generation` (src/services/index.ts).
 * Before the service sees a request, its tokens are reserved from the caller's generation budget
 * (src/resolvers/security/generation-budget.ts); what it did not use goes back when it is done.
 */
import { Arg, Ctx, Mutation, Resolver, Root, Subscription } from 'type-graphql';
import type { SubscribeResolverData } from 'type-graphql';
import type { Generation, GenerationChunk } from '../services/generation.js';
import { asDeltagateError } from './error-mapping.js';
import type { GraphQLContext } from './context.js';
import type { GenerationReservation } from './security/index.js';
import { GenerateInput, GenerationChunkType, GenerationType } from './types/generation.js';

/**
 * A refusal (bad input, not found, quota, a full queue) ran nothing: its whole reservation goes back. An
 * internal failure or a client that left mid-generation keeps it spent (work was done; leaving early is not
 * a way to generate for free).
 */
function settleFailure(reservation: GenerationReservation | undefined, err: unknown, signal?: AbortSignal) {
  const code = asDeltagateError(err)?.code;
  if (code !== undefined && code !== 'INTERNAL_SERVER_ERROR' && !signal?.aborted) reservation?.settle(0);
}

/**
 * The stream as it is, settling the reservation when it ends: with the usage of its last chunk when it
 * finished, or in full when the client left first or it failed mid-way (as for `generate`).
 */
async function* settledStream(
  stream: AsyncIterableIterator<GenerationChunk>,
  reservation: GenerationReservation | undefined,
): AsyncGenerator<GenerationChunk> {
  let used: number | undefined;
  try {
    for await (const chunk of stream) {
      if (chunk.usage) used = chunk.usage.totalTokens;
      yield chunk;
    }
  } finally {
    if (reservation) reservation.settle(used ?? reservation.tokens);
  }
}

@Resolver(() => GenerationType)
export class GenerationResolver {
  @Mutation(() => GenerationType)
  async generate(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => GenerateInput) input: GenerateInput,
  ): Promise<Generation> {
    ctx.services.generation.precheck(input);
    const reservation = ctx.guards.generationBudget?.reserve(ctx.actor, input);
    try {
      const generation = await ctx.services.generation.generate(ctx.actor, input, { signal: ctx.signal });
      reservation?.settle(generation.usage.totalTokens);
      return generation;
    } catch (err) {
      settleFailure(reservation, err, ctx.signal);
      throw err;
    }
  }

  @Subscription(() => GenerationChunkType, {
    description: 'Text deltas as they are generated; the last chunk carries the finishReason.',
    subscribe: async ({
      args,
      context,
    }: SubscribeResolverData<unknown, { input: GenerateInput }, GraphQLContext>) => {
      context.services.generation.precheck(args.input);
      const reservation = context.guards.generationBudget?.reserve(context.actor, args.input);
      try {
        const stream = await context.services.generation.generateStream(context.actor, args.input);
        return settledStream(stream, reservation);
      } catch (err) {
        settleFailure(reservation, err);
        throw err;
      }
    },
  })
  generateStream(
    @Root() chunk: GenerationChunk,
    @Arg('input', () => GenerateInput) _input: GenerateInput,
  ): GenerationChunk {
    return chunk;
  }
}
