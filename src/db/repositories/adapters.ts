/**
 * Named adapters (unique name per customer, enforced by a UNIQUE constraint) — the stable handle a
 * customer generates with. Versions and aliases live in adapter-versions.ts; the name/quota rules in
 * src/services/adapters.ts.
 */
import type { Db } from '../database.js';
import { nowIso } from '../database.js';
import { newId } from '../ids.js';
import { toPage, type Page, type PageArgs, type Scope } from './scope.js';

export interface Adapter {
  id: string;
  customerId: string;
  name: string;
  baseModelId: string;
  description: string | null;
  createdAt: string;
}

type Row = {
  id: string;
  customer_id: string;
  name: string;
  base_model_id: string;
  description: string | null;
  created_at: string;
};

function toAdapter(r: Row): Adapter {
  return {
    id: r.id,
    customerId: r.customer_id,
    name: r.name,
    baseModelId: r.base_model_id,
    description: r.description,
    createdAt: r.created_at,
  };
}

export class AdaptersRepository {
  constructor(private readonly db: Db) {}

  /** Throws the driver's unique violation on a duplicate name (the service maps it to CONFLICT). */
  async insert(
    input: { customerId: string; name: string; baseModelId: string; description: string | null },
    db: Db = this.db,
  ): Promise<Adapter> {
    const row: Row = {
      id: newId('adapter'),
      customer_id: input.customerId,
      name: input.name,
      base_model_id: input.baseModelId,
      description: input.description,
      created_at: nowIso(),
    };
    await db.insertInto('adapters').values(row).execute();
    return toAdapter(row);
  }

  async findById(scope: Scope, id: string, db: Db = this.db): Promise<Adapter | null> {
    let q = db.selectFrom('adapters').selectAll().where('id', '=', id);
    if (scope.kind === 'tenant') q = q.where('customer_id', '=', scope.customerId);
    const r = await q.executeTakeFirst();
    return r ? toAdapter(r) : null;
  }

  async findByIds(scope: Scope, ids: readonly string[]): Promise<Adapter[]> {
    if (ids.length === 0) return [];
    let q = this.db
      .selectFrom('adapters')
      .selectAll()
      .where('id', 'in', [...ids]);
    if (scope.kind === 'tenant') q = q.where('customer_id', '=', scope.customerId);
    return (await q.execute()).map(toAdapter);
  }

  /** Names are unique per customer, so a name lookup needs the customer. */
  async findByName(customerId: string, name: string): Promise<Adapter | null> {
    const r = await this.db
      .selectFrom('adapters')
      .selectAll()
      .where('customer_id', '=', customerId)
      .where('name', '=', name)
      .executeTakeFirst();
    return r ? toAdapter(r) : null;
  }

  async list(scope: Scope, page: PageArgs): Promise<Page<Adapter>> {
    let q = this.db
      .selectFrom('adapters')
      .selectAll()
      .orderBy('id')
      .limit(page.first + 1);
    if (scope.kind === 'tenant') q = q.where('customer_id', '=', scope.customerId);
    if (page.after) q = q.where('id', '>', page.after);
    return toPage((await q.execute()).map(toAdapter), page.first);
  }

  async countForCustomer(customerId: string, db: Db = this.db): Promise<number> {
    const r = await db
      .selectFrom('adapters')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('customer_id', '=', customerId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
