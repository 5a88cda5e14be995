/**
 * Customers (tenants) and their quotas. Customers are created and listed by admins only (the rule lives in
 * src/services/customers.ts); a customer reading itself goes through `findById` with its own scope.
 */
import type { Kysely, Selectable } from 'kysely';
import type { Db } from '../database.js';
import { isPostgres } from '../migrations.js';
import { nowIso, toNumber } from '../database.js';
import { newId } from '../ids.js';
import type { CustomersTable } from '../schema.js';
import { pageById, type Page, type PageArgs, type Scope } from './scope.js';

export interface Customer {
  id: string;
  name: string;
  maxAdapters: number;
  maxConcurrentJobs: number;
  monthlyTokenLimit: number | null;
  createdAt: string;
}

export type NewCustomer = Omit<Customer, 'id' | 'createdAt'>;

type Row = Selectable<CustomersTable>;

function toCustomer(r: Row): Customer {
  return {
    id: r.id,
    name: r.name,
    maxAdapters: r.max_adapters,
    maxConcurrentJobs: r.max_concurrent_jobs,
    monthlyTokenLimit: toNumber(r.monthly_token_limit),
    createdAt: r.created_at,
  };
}

export class CustomersRepository {
  constructor(private readonly db: Db) {}

  async create(input: NewCustomer, db: Db = this.db): Promise<Customer> {
    const row: Row = {
      id: newId('customer'),
      name: input.name,
      max_adapters: input.maxAdapters,
      max_concurrent_jobs: input.maxConcurrentJobs,
      monthly_token_limit: input.monthlyTokenLimit,
      created_at: nowIso(),
    };
    await db.insertInto('customers').values(row).execute();
    return toCustomer(row);
  }

  /** A tenant scope only ever finds its own customer row. */
  async findById(scope: Scope, id: string): Promise<Customer | null> {
    if (scope.kind === 'tenant' && scope.customerId !== id) return null;
    const r = await this.db.selectFrom('customers').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? toCustomer(r) : null;
  }

  /**
   * Serializes quota checks of one customer inside a transaction: PostgreSQL row lock; SQLite needs none
   * (Kysely runs its transactions one at a time on the single connection).
   */
  async lockForUpdate(id: string, db: Db = this.db): Promise<void> {
    if (!isPostgres(db as Kysely<unknown>)) return;
    await db.selectFrom('customers').select('id').where('id', '=', id).forUpdate().execute();
  }

  async findByIds(scope: Scope, ids: readonly string[]): Promise<Customer[]> {
    const wanted = scope.kind === 'tenant' ? ids.filter((id) => id === scope.customerId) : [...ids];
    if (wanted.length === 0) return [];
    const rows = await this.db.selectFrom('customers').selectAll().where('id', 'in', wanted).execute();
    return rows.map(toCustomer);
  }

  async list(scope: Scope, page: PageArgs): Promise<Page<Customer>> {
    let q = this.db.selectFrom('customers').selectAll();
    // A customer's own row is its tenant scope (the table has no customer_id, so no `inScope`).
    if (scope.kind === 'tenant') q = q.where('id', '=', scope.customerId);
    return pageById(q, page, toCustomer);
  }
}
