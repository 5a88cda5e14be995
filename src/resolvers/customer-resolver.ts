/**
 * viewer, customers (admin), customer, createCustomer (admin), createApiKey, revokeApiKey, and the
 * Customer's nested fields. Thin: arguments → service (with the caller's Actor) → result; errors are mapped
 * in error-mapping.ts.
 */
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { ApiKey } from '../db/repositories/api-keys.js';
import type { Customer } from '../db/repositories/customers.js';
import type { Usage } from '../db/repositories/usage.js';
import { NotFoundError } from '../shared/errors.js';
import type { GraphQLContext } from './context.js';
import { connectionType, pageRequest, toConnection, type ConnectionShape } from './pagination.js';
import {
  ApiKeyType,
  CreateApiKeyPayload,
  CreateCustomerPayload,
  CustomerType,
  UsageType,
  ViewerType,
} from './types/customer.js';
import { CreateCustomerInput } from './types/inputs.js';

export const CustomerConnection = connectionType('Customer', CustomerType);

interface Viewer {
  role: 'ADMIN' | 'CUSTOMER';
  customer: Customer | null;
  apiKey: ApiKey | null;
}

@Resolver(() => CustomerType)
export class CustomerResolver {
  @Query(() => ViewerType, { description: 'Who the API key belongs to.' })
  async viewer(@Ctx() ctx: GraphQLContext): Promise<Viewer> {
    const { actor, services } = ctx;
    if (actor.role === 'ADMIN') return { role: 'ADMIN', customer: null, apiKey: null };
    return {
      role: 'CUSTOMER',
      customer: await services.customers.get(actor, actor.customerId),
      apiKey: await services.apiKeys.get(actor, actor.apiKeyId),
    };
  }

  @Query(() => CustomerConnection, { description: 'Admin only.' })
  async customers(
    @Ctx() ctx: GraphQLContext,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
  ): Promise<ConnectionShape<Customer>> {
    const req = pageRequest(first, after);
    return toConnection(await ctx.services.customers.list(ctx.actor, req.first, req.after), req);
  }

  @Query(() => CustomerType, { nullable: true })
  async customer(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<Customer> {
    return ctx.services.customers.get(ctx.actor, id);
  }

  @Mutation(() => CreateCustomerPayload, { description: 'Admin only; returns the first API key once.' })
  async createCustomer(
    @Ctx() ctx: GraphQLContext,
    @Arg('input', () => CreateCustomerInput) input: CreateCustomerInput,
  ): Promise<{ customer: Customer; apiKey: ApiKey; secret: string }> {
    return ctx.services.customers.create(ctx.actor, input);
  }

  @Mutation(() => CreateApiKeyPayload)
  async createApiKey(
    @Ctx() ctx: GraphQLContext,
    @Arg('customerId', () => ID) customerId: string,
    @Arg('name', () => String, { nullable: true }) name: string | null,
  ): Promise<{ apiKey: ApiKey; secret: string }> {
    return ctx.services.apiKeys.create(ctx.actor, customerId, name ?? null);
  }

  @Mutation(() => ApiKeyType, { description: 'Effective immediately.' })
  async revokeApiKey(@Ctx() ctx: GraphQLContext, @Arg('id', () => ID) id: string): Promise<ApiKey> {
    return ctx.services.apiKeys.revoke(ctx.actor, id);
  }

  @FieldResolver(() => [ApiKeyType], { description: 'The first 100 keys, oldest first.' })
  async apiKeys(@Ctx() ctx: GraphQLContext, @Root() customer: Customer): Promise<ApiKey[]> {
    return (await ctx.services.apiKeys.listForCustomer(ctx.actor, customer.id, 100, null)).rows;
  }

  @FieldResolver(() => UsageType, { description: 'Usage in the current month (UTC).' })
  async usage(@Ctx() ctx: GraphQLContext, @Root() customer: Customer): Promise<Usage> {
    // Same scope rule as every read: a customer only reaches its own row.
    const visible = await ctx.loaders.customer.load(customer.id);
    if (visible === null) throw new NotFoundError('customer', customer.id);
    return ctx.services.repos.usage.get(customer.id);
  }
}
