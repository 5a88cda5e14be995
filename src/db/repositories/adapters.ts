/**
 * Named adapters (unique name per customer, enforced by a UNIQUE constraint) — the stable handle a
 * customer generates with. Versions and aliases live in adapter-versions.ts; the name/quota rules in
 * src/services/adapters.ts.
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso } from '../database.js';
import { newId } from '../ids.js';
import type { AdaptersTable } from '../schema.js';
import { inScope, pageById, type Page, type PageArgs, type Scope } from './scope.js';

export interface Adapter {
  id: string;
  customerId: string;
  name: string;
  baseModelId: string;
  description: string | null;
  createdAt: string;
  /** The owner keeps it in the gateway's memory and batch slots. */
  pinned: boolean;
}

type Row = Selectable<AdaptersTable>;

function toAdapter(r: Row): Adapter {
  return {
    id: r.id,
    customerId: r.customer_id,
    name: r.name,
    baseModelId: r.base_model_id,
    description: r.description,
    createdAt: r.created_at,
    pinned: Number(r.pinned) === 1,
  };
}

export class AdaptersRepository {
  constructor(private readonly db: Db) {}

  /** Throws the driver's unique violation on a duplicate name (the service maps it to CONFLICT). */
  async insert(
    input: { customerId: string; name: string; baseModelId: string; description: string | null },
    db: Db = this.db,
  ): Promise<Adapter> {
    const row = {
      id: newId('adapter'),
      customer_id: input.customerId,
      name: input.name,
      base_model_id: input.baseModelId,
      description: input.description,
      created_at: nowIso(),
    };
    await db.insertInto('adapters').values(row).execute();
    return toAdapter({ ...row, pinned: 0 });
  }

  async findById(scope: Scope, id: string, db: Db = this.db): Promise<Adapter | null> {
    const r = await db
      .selectFrom('adapters')
      .selectAll()
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toAdapter(r) : null;
  }

  async findByIds(scope: Scope, ids: readonly string[]): Promise<Adapter[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom('adapters')
      .selectAll()
      .where('id', 'in', [...ids])
      .$call(inScope(scope))
      .execute();
    return rows.map(toAdapter);
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
    return pageById(this.db.selectFrom('adapters').selectAll().$call(inScope(scope)), page, toAdapter);
  }

  async setPinned(scope: Scope, id: string, pinned: boolean, db: Db = this.db): Promise<void> {
    await db
      .updateTable('adapters')
      .set({ pinned: pinned ? 1 : 0 })
      .where('id', '=', id)
      .$call(inScope(scope))
      .execute();
  }

  async countPinned(customerId: string, db: Db = this.db): Promise<number> {
    const r = await db
      .selectFrom('adapters')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('customer_id', '=', customerId)
      .where('pinned', '=', 1)
      .executeTakeFirstOrThrow();
    return Number(r.n);
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
