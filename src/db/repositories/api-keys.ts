/**
 * API key rows: a unique lookup prefix and the sha256 of the secret — never the secret itself. Secret
 * generation and the constant-time comparison live in src/services/api-keys.ts; `findByPrefix` is the one
 * unscoped read (authentication happens before there is a tenant).
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso } from '../database.js';
import { newId } from '../ids.js';
import type { ApiKeysTable } from '../schema.js';
import { inScope, pageById, type Page, type PageArgs, type Scope } from './scope.js';

export interface ApiKey {
  id: string;
  customerId: string;
  name: string | null;
  prefix: string;
  secretHash: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

type Row = Selectable<ApiKeysTable>;

function toApiKey(r: Row): ApiKey {
  return {
    id: r.id,
    customerId: r.customer_id,
    name: r.name,
    prefix: r.prefix,
    secretHash: r.secret_hash,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

export class ApiKeysRepository {
  constructor(private readonly db: Db) {}

  async create(
    input: { customerId: string; name: string | null; prefix: string; secretHash: string },
    db: Db = this.db,
  ): Promise<ApiKey> {
    const row: Row = {
      id: newId('apiKey'),
      customer_id: input.customerId,
      name: input.name,
      prefix: input.prefix,
      secret_hash: input.secretHash,
      created_at: nowIso(),
      last_used_at: null,
      revoked_at: null,
    };
    await db.insertInto('api_keys').values(row).execute();
    return toApiKey(row);
  }

  /** Authentication only: the caller compares the hash in constant time and checks `revokedAt`. */
  async findByPrefix(prefix: string): Promise<ApiKey | null> {
    const r = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('prefix', '=', prefix)
      .executeTakeFirst();
    return r ? toApiKey(r) : null;
  }

  async findById(scope: Scope, id: string): Promise<ApiKey | null> {
    const r = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toApiKey(r) : null;
  }

  async listByCustomer(scope: Scope, customerId: string, page: PageArgs): Promise<Page<ApiKey>> {
    if (scope.kind === 'tenant' && scope.customerId !== customerId) return { rows: [], hasNextPage: false };
    const q = this.db.selectFrom('api_keys').selectAll().where('customer_id', '=', customerId);
    return pageById(q, page, toApiKey);
  }

  /** Idempotent: revoking twice keeps the first timestamp. Returns null when not visible in `scope`. */
  async revoke(scope: Scope, id: string): Promise<ApiKey | null> {
    await this.db
      .updateTable('api_keys')
      .set({ revoked_at: nowIso() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .$call(inScope(scope))
      .execute();
    return this.findById(scope, id);
  }

  async touch(id: string): Promise<void> {
    await this.db.updateTable('api_keys').set({ last_used_at: nowIso() }).where('id', '=', id).execute();
  }
}
