/**
 * Immutable, numbered adapter versions and the movable aliases that point at them. Numbering is
 * `max(version) + 1` guarded by UNIQUE (adapter_id, version): a concurrent insert loses with a unique
 * violation and the service retries. Files live in blob storage under `blob_prefix` (PEFT layout).
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso, toNumber } from '../database.js';
import { newId } from '../ids.js';
import type { AdapterVersionsTable } from '../schema.js';
import { inScope, parseJson, type Scope } from './scope.js';

export interface StoredFile {
  name: string;
  sizeBytes: number;
  sha256: string;
}

export interface AdapterVersion {
  id: string;
  adapterId: string;
  customerId: string;
  version: number;
  sha256: string;
  sizeBytes: number;
  rank: number;
  alpha: number;
  targetModules: string[];
  metrics: Record<string, unknown> | null;
  files: StoredFile[];
  trainingJobId: string | null;
  datasetId: string | null;
  blobPrefix: string;
  createdAt: string;
  /** How a derived version was made (SHRINK / MERGE, docs/ADAPTERS.md); null for trained and imported ones. */
  derivation: Derivation | null;
}

/** A derived version's recipe and what the engine reported (JSON in SQL). */
export interface Derivation {
  operation: 'SHRINK' | 'MERGE';
  /** MERGE only: LINEAR | CAT | SVD. */
  method: 'LINEAR' | 'CAT' | 'SVD' | null;
  /** As asked (null when not given: energy, or a method's default). */
  rank: number | null;
  energy: number | null;
  report: Record<string, unknown>;
}

/** One source of a derived version, in order. `parentVersionId` outlives the parent's row. */
export interface AdapterVersionParent {
  versionId: string;
  ordinal: number;
  parentVersionId: string;
  weight: number;
  customerId: string;
}

/** Everything but the creation time, which the repository stamps; `derivation` defaults to null. */
export type NewAdapterVersion = Omit<AdapterVersion, 'createdAt' | 'derivation'> & {
  derivation?: Derivation | null;
};

export interface AdapterAlias {
  adapterId: string;
  alias: string;
  versionId: string;
  customerId: string;
  updatedAt: string;
}

type Row = Selectable<AdapterVersionsTable>;

function toVersion(r: Row): AdapterVersion {
  return {
    id: r.id,
    adapterId: r.adapter_id,
    customerId: r.customer_id,
    version: r.version,
    sha256: r.sha256,
    sizeBytes: toNumber(r.size_bytes) ?? 0,
    rank: r.rank,
    alpha: Number(r.alpha),
    targetModules: parseJson<string[]>(r.target_modules, []),
    metrics: parseJson<Record<string, unknown> | null>(r.metrics, null),
    files: parseJson<StoredFile[]>(r.files, []),
    trainingJobId: r.training_job_id,
    datasetId: r.dataset_id,
    blobPrefix: r.blob_prefix,
    createdAt: r.created_at,
    derivation: parseJson<Derivation | null>(r.derivation, null),
  };
}

export class AdapterVersionsRepository {
  constructor(private readonly db: Db) {}

  static newId(): string {
    return newId('adapterVersion');
  }

  async nextVersionNumber(adapterId: string, db: Db = this.db): Promise<number> {
    const r = await db
      .selectFrom('adapter_versions')
      .select((eb) => eb.fn.max('version').as('v'))
      .where('adapter_id', '=', adapterId)
      .executeTakeFirst();
    return Number(r?.v ?? 0) + 1;
  }

  /** Throws the driver's unique violation when the number (or the training job) is already taken. */
  async insert(input: NewAdapterVersion, db: Db = this.db): Promise<AdapterVersion> {
    const row: Row = {
      id: input.id,
      adapter_id: input.adapterId,
      customer_id: input.customerId,
      version: input.version,
      sha256: input.sha256,
      size_bytes: input.sizeBytes,
      rank: input.rank,
      alpha: input.alpha,
      target_modules: JSON.stringify(input.targetModules),
      metrics: input.metrics === null ? null : JSON.stringify(input.metrics),
      files: JSON.stringify(input.files),
      training_job_id: input.trainingJobId,
      dataset_id: input.datasetId,
      blob_prefix: input.blobPrefix,
      created_at: nowIso(),
      derivation: input.derivation ? JSON.stringify(input.derivation) : null,
    };
    await db.insertInto('adapter_versions').values(row).execute();
    return toVersion(row);
  }

  async findById(scope: Scope, id: string, db: Db = this.db): Promise<AdapterVersion | null> {
    const r = await db
      .selectFrom('adapter_versions')
      .selectAll()
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toVersion(r) : null;
  }

  async findByIds(scope: Scope, ids: readonly string[]): Promise<AdapterVersion[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom('adapter_versions')
      .selectAll()
      .where('id', 'in', [...ids])
      .$call(inScope(scope))
      .execute();
    return rows.map(toVersion);
  }

  async findByNumber(scope: Scope, adapterId: string, version: number): Promise<AdapterVersion | null> {
    const r = await this.db
      .selectFrom('adapter_versions')
      .selectAll()
      .where('adapter_id', '=', adapterId)
      .where('version', '=', version)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toVersion(r) : null;
  }

  async findByTrainingJob(trainingJobId: string, db: Db = this.db): Promise<AdapterVersion | null> {
    const r = await db
      .selectFrom('adapter_versions')
      .selectAll()
      .where('training_job_id', '=', trainingJobId)
      .executeTakeFirst();
    return r ? toVersion(r) : null;
  }

  /** All versions of the given adapters, ascending by number (for DataLoader batching). */
  async listByAdapters(scope: Scope, adapterIds: readonly string[]): Promise<AdapterVersion[]> {
    if (adapterIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('adapter_versions')
      .selectAll()
      .where('adapter_id', 'in', [...adapterIds])
      .$call(inScope(scope))
      .orderBy('adapter_id')
      .orderBy('version')
      .execute();
    return rows.map(toVersion);
  }

  async delete(scope: Scope, id: string, db: Db = this.db): Promise<boolean> {
    const res = await db
      .deleteFrom('adapter_versions')
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return Number(res.numDeletedRows) === 1;
  }

  // --- lineage ---

  /** Records a derived version's parents in order (call in the registering transaction). */
  async insertParents(
    versionId: string,
    customerId: string,
    parents: readonly { versionId: string; weight: number }[],
    db: Db = this.db,
  ): Promise<void> {
    if (parents.length === 0) return;
    await db
      .insertInto('adapter_version_parents')
      .values(
        parents.map((p, ordinal) => ({
          version_id: versionId,
          ordinal,
          parent_version_id: p.versionId,
          weight: p.weight,
          customer_id: customerId,
        })),
      )
      .execute();
  }

  /** The parents of several versions (DataLoader), by version then ordinal. */
  async parentsOf(scope: Scope, versionIds: readonly string[]): Promise<AdapterVersionParent[]> {
    if (versionIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('adapter_version_parents')
      .selectAll()
      .where('version_id', 'in', [...versionIds])
      .$call(inScope(scope))
      .orderBy('version_id')
      .orderBy('ordinal')
      .execute();
    return rows.map((r) => ({
      versionId: r.version_id,
      ordinal: Number(r.ordinal),
      parentVersionId: r.parent_version_id,
      weight: Number(r.weight),
      customerId: r.customer_id,
    }));
  }

  // --- aliases ---

  /** Point `alias` of an adapter at a version (insert or move). */
  async setAlias(input: Omit<AdapterAlias, 'updatedAt'>, db: Db = this.db): Promise<void> {
    const now = nowIso();
    await db
      .insertInto('adapter_aliases')
      .values({
        adapter_id: input.adapterId,
        alias: input.alias,
        version_id: input.versionId,
        customer_id: input.customerId,
        updated_at: now,
      })
      .onConflict((oc) =>
        oc.columns(['adapter_id', 'alias']).doUpdateSet({ version_id: input.versionId, updated_at: now }),
      )
      .execute();
  }

  async listAliases(scope: Scope, adapterIds: readonly string[]): Promise<AdapterAlias[]> {
    if (adapterIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('adapter_aliases')
      .selectAll()
      .where('adapter_id', 'in', [...adapterIds])
      .$call(inScope(scope))
      .orderBy('adapter_id')
      .orderBy('alias')
      .execute();
    return rows.map((r) => ({
      adapterId: r.adapter_id,
      alias: r.alias,
      versionId: r.version_id,
      customerId: r.customer_id,
      updatedAt: r.updated_at,
    }));
  }

  async aliasesOfVersion(versionId: string, db: Db = this.db): Promise<string[]> {
    const rows = await db
      .selectFrom('adapter_aliases')
      .select('alias')
      .where('version_id', '=', versionId)
      .orderBy('alias')
      .execute();
    return rows.map((r) => r.alias);
  }
}
