/**
 * Customers (tenants): created and listed by the admin only; a customer may read itself. Creating a customer
 * also creates its first API key in the same transaction, so a customer never exists without a way in.
 * Key rules are in api-keys.ts; quota enforcement where the quota is used (adapters.ts, issue 5's jobs).
 */
import type { Customer } from '../db/repositories/customers.js';
import { inTransaction, type Page, type Repositories } from '../db/repositories/index.js';
import { NotFoundError } from '../shared/errors.js';
import { requireAdmin, scopeOf, type Actor } from './actor.js';
import type { ApiKeysService, CreatedApiKey } from './api-keys.js';
import { validateLabel, validateQuota } from './validation.js';

export interface CreateCustomerInput {
  name: string;
  maxAdapters?: number | null;
  maxConcurrentJobs?: number | null;
  monthlyTokenLimit?: number | null;
}

export const DEFAULT_QUOTAS = { maxAdapters: 100, maxConcurrentJobs: 2 } as const;

export class CustomersService {
  constructor(
    private readonly repos: Repositories,
    private readonly apiKeys: ApiKeysService,
  ) {}

  async create(actor: Actor, input: CreateCustomerInput): Promise<{ customer: Customer } & CreatedApiKey> {
    requireAdmin(actor);
    const name = validateLabel(input.name, 'customer name');
    const maxAdapters = validateQuota(
      input.maxAdapters,
      'maxAdapters',
      DEFAULT_QUOTAS.maxAdapters,
      1_000_000,
    );
    const maxConcurrentJobs = validateQuota(
      input.maxConcurrentJobs,
      'maxConcurrentJobs',
      DEFAULT_QUOTAS.maxConcurrentJobs,
      1_000,
    );
    const monthlyTokenLimit =
      input.monthlyTokenLimit === null || input.monthlyTokenLimit === undefined
        ? null
        : validateQuota(input.monthlyTokenLimit, 'monthlyTokenLimit', 0, Number.MAX_SAFE_INTEGER);
    return inTransaction(this.repos.db, async (tx) => {
      const customer = await tx.customers.create({ name, maxAdapters, maxConcurrentJobs, monthlyTokenLimit });
      const key = await this.apiKeys.create(actor, customer.id, 'default', tx);
      return { customer, ...key };
    });
  }

  async get(actor: Actor, id: string): Promise<Customer> {
    const customer = await this.repos.customers.findById(scopeOf(actor), id);
    if (customer === null) throw new NotFoundError('customer', id);
    return customer;
  }

  async getMany(actor: Actor, ids: readonly string[]): Promise<Customer[]> {
    return this.repos.customers.findByIds(scopeOf(actor), ids);
  }

  /** Admin only: a customer listing customers is FORBIDDEN (the one place a customer gets FORBIDDEN). */
  async list(actor: Actor, first: number, after: string | null): Promise<Page<Customer>> {
    requireAdmin(actor);
    return this.repos.customers.list(scopeOf(actor), { first, after });
  }
}
