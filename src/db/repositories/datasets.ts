/**
 * Dataset rows: metadata and validation results of a JSONL file whose bytes live in blob storage under
 * `blob_key`. Status moves PENDING → VALIDATING → READY | INVALID (the rules are in src/services/datasets.ts);
 * `transition` makes each move a compare-and-set so two completions of one upload cannot both validate.
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso, toNumber } from '../database.js';
import type { DatasetsTable } from '../schema.js';
import { inScope, pageById, parseJson, type Page, type PageArgs, type Scope } from './scope.js';

export type DatasetFormat = 'PROMPT_COMPLETION' | 'CHAT' | 'TEXT';
export type DatasetStatus = 'PENDING' | 'VALIDATING' | 'READY' | 'INVALID';

export interface DatasetError {
  line: number;
  message: string;
}

export interface Dataset {
  id: string;
  customerId: string;
  name: string;
  format: DatasetFormat;
  status: DatasetStatus;
  rowCount: number | null;
  tokenCount: number | null;
  sizeBytes: number | null;
  sha256: string | null;
  errors: DatasetError[];
  blobKey: string;
  createdAt: string;
  updatedAt: string;
}

export interface DatasetResult {
  status: DatasetStatus;
  rowCount?: number | null;
  tokenCount?: number | null;
  sizeBytes?: number | null;
  sha256?: string | null;
  errors?: DatasetError[];
}

type Row = Selectable<DatasetsTable>;

function toDataset(r: Row): Dataset {
  return {
    id: r.id,
    customerId: r.customer_id,
    name: r.name,
    format: r.format as DatasetFormat,
    status: r.status as DatasetStatus,
    rowCount: r.row_count,
    tokenCount: toNumber(r.token_count),
    sizeBytes: toNumber(r.size_bytes),
    sha256: r.sha256,
    errors: parseJson<DatasetError[]>(r.errors, []),
    blobKey: r.blob_key,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The `errors` column: a JSON array, or null when there are none. */
function errorsColumn(errors: DatasetError[] | undefined): string | null {
  return errors && errors.length > 0 ? JSON.stringify(errors) : null;
}

export class DatasetsRepository {
  constructor(private readonly db: Db) {}

  async insert(
    input: {
      id: string;
      customerId: string;
      name: string;
      format: DatasetFormat;
      blobKey: string;
    } & DatasetResult,
    db: Db = this.db,
  ): Promise<Dataset> {
    const now = nowIso();
    const row: Row = {
      id: input.id,
      customer_id: input.customerId,
      name: input.name,
      format: input.format,
      status: input.status,
      row_count: input.rowCount ?? null,
      token_count: input.tokenCount ?? null,
      size_bytes: input.sizeBytes ?? null,
      sha256: input.sha256 ?? null,
      errors: errorsColumn(input.errors),
      blob_key: input.blobKey,
      created_at: now,
      updated_at: now,
    };
    await db.insertInto('datasets').values(row).execute();
    return toDataset(row);
  }

  async findById(scope: Scope, id: string, db: Db = this.db): Promise<Dataset | null> {
    const r = await db
      .selectFrom('datasets')
      .selectAll()
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toDataset(r) : null;
  }

  async findByIds(scope: Scope, ids: readonly string[]): Promise<Dataset[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom('datasets')
      .selectAll()
      .where('id', 'in', [...ids])
      .$call(inScope(scope))
      .execute();
    return rows.map(toDataset);
  }

  async list(scope: Scope, page: PageArgs): Promise<Page<Dataset>> {
    return pageById(this.db.selectFrom('datasets').selectAll().$call(inScope(scope)), page, toDataset);
  }

  /**
   * Compare-and-set on status: moves only a row currently in `from`. Returns the updated row, or null when
   * the row is not visible or was not in `from` (someone else got there first).
   */
  async transition(
    scope: Scope,
    id: string,
    from: DatasetStatus,
    result: DatasetResult,
    db: Db = this.db,
  ): Promise<Dataset | null> {
    const res = await db
      .updateTable('datasets')
      .set({
        status: result.status,
        updated_at: nowIso(),
        ...(result.rowCount !== undefined ? { row_count: result.rowCount } : {}),
        ...(result.tokenCount !== undefined ? { token_count: result.tokenCount } : {}),
        ...(result.sizeBytes !== undefined ? { size_bytes: result.sizeBytes } : {}),
        ...(result.sha256 !== undefined ? { sha256: result.sha256 } : {}),
        ...(result.errors !== undefined ? { errors: errorsColumn(result.errors) } : {}),
      })
      .where('id', '=', id)
      .where('status', '=', from)
      .$call(inScope(scope))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return null;
    return this.findById(scope, id, db);
  }

  async delete(scope: Scope, id: string, db: Db = this.db): Promise<boolean> {
    const res = await db.deleteFrom('datasets').where('id', '=', id).$call(inScope(scope)).executeTakeFirst();
    return Number(res.numDeletedRows) === 1;
  }
}
