/**
 * Versioned schema migrations, in code (no files to ship), applied by `openDatabase` at start-up through
 * Kysely's Migrator (which takes a lock, so an API and a worker starting together do not race).
 * Append new migrations; never edit one that has shipped. Column conventions are explained in schema.ts.
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/** Column type for 64-bit counters: bigint in PostgreSQL, integer (64-bit already) in SQLite. */
function big(db: Kysely<unknown>): 'bigint' | 'integer' {
  return isPostgres(db) ? 'bigint' : 'integer';
}

/** Detect the dialect from the adapter class, so migrations need no extra parameter. */
export function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter.constructor.name === 'PostgresAdapter';
}

const m0001: Migration = {
  async up(db) {
    const bigType = big(db);
    await db.schema
      .createTable('customers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('max_adapters', 'integer', (c) => c.notNull())
      .addColumn('max_concurrent_jobs', 'integer', (c) => c.notNull())
      .addColumn('monthly_token_limit', bigType)
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
      .addColumn('name', 'text')
      .addColumn('prefix', 'text', (c) => c.notNull().unique())
      .addColumn('secret_hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema.createIndex('api_keys_customer_idx').on('api_keys').column('customer_id').execute();

    await db.schema
      .createTable('datasets')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('format', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('row_count', 'integer')
      .addColumn('token_count', bigType)
      .addColumn('size_bytes', bigType)
      .addColumn('sha256', 'text')
      .addColumn('errors', 'text')
      .addColumn('blob_key', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('datasets_customer_idx')
      .on('datasets')
      .columns(['customer_id', 'id'])
      .execute();

    await db.schema
      .createTable('uploads')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('blob_key', 'text', (c) => c.notNull())
      .addColumn('size_bytes', bigType, (c) => c.notNull())
      .addColumn('dataset_id', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .execute();
    await db.schema.createIndex('uploads_customer_idx').on('uploads').column('customer_id').execute();

    await db.schema
      .createTable('adapters')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('base_model_id', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('adapters_customer_name_uq', ['customer_id', 'name'])
      .execute();

    await db.schema
      .createTable('training_jobs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
      .addColumn('adapter_id', 'text', (c) => c.notNull().references('adapters.id').onDelete('cascade'))
      .addColumn('dataset_id', 'text', (c) => c.notNull())
      .addColumn('validation_dataset_id', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('hyperparameters', 'text', (c) => c.notNull())
      .addColumn('progress', 'text')
      .addColumn('loss_history', 'text', (c) => c.notNull())
      .addColumn('error', 'text')
      .addColumn('idempotency_key', 'text')
      .addColumn('result_version_id', 'text')
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('cancel_requested_at', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('training_jobs_idempotency_uq', ['customer_id', 'idempotency_key'])
      .execute();
    await db.schema
      .createIndex('training_jobs_customer_idx')
      .on('training_jobs')
      .columns(['customer_id', 'status'])
      .execute();

    await db.schema
      .createTable('adapter_versions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('adapter_id', 'text', (c) => c.notNull().references('adapters.id').onDelete('cascade'))
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('size_bytes', bigType, (c) => c.notNull())
      .addColumn('rank', 'integer', (c) => c.notNull())
      .addColumn('alpha', 'real', (c) => c.notNull())
      .addColumn('target_modules', 'text', (c) => c.notNull())
      .addColumn('metrics', 'text')
      .addColumn('files', 'text', (c) => c.notNull())
      // Unique: a job registers at most one version even when BullMQ runs it twice (issue 5).
      .addColumn('training_job_id', 'text', (c) => c.unique())
      .addColumn('dataset_id', 'text')
      .addColumn('blob_prefix', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('adapter_versions_adapter_version_uq', ['adapter_id', 'version'])
      .execute();
    await db.schema
      .createIndex('adapter_versions_customer_idx')
      .on('adapter_versions')
      .column('customer_id')
      .execute();

    await db.schema
      .createTable('adapter_aliases')
      .addColumn('adapter_id', 'text', (c) => c.notNull().references('adapters.id').onDelete('cascade'))
      .addColumn('alias', 'text', (c) => c.notNull())
      .addColumn('version_id', 'text', (c) => c.notNull().references('adapter_versions.id'))
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('adapter_aliases_pk', ['adapter_id', 'alias'])
      .execute();

    await db.schema
      .createTable('usage_counters')
      .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
      .addColumn('period', 'text', (c) => c.notNull())
      .addColumn('requests', bigType, (c) => c.notNull().defaultTo(0))
      .addColumn('prompt_tokens', bigType, (c) => c.notNull().defaultTo(0))
      .addColumn('completion_tokens', bigType, (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('usage_counters_pk', ['customer_id', 'period'])
      .execute();
  },
  async down(db) {
    for (const t of [
      'usage_counters',
      'adapter_aliases',
      'adapter_versions',
      'training_jobs',
      'adapters',
      'uploads',
      'datasets',
      'api_keys',
      'customers',
    ]) {
      await db.schema.dropTable(t).ifExists().execute();
    }
  },
};

/** Adapters an owner pins stay in the gateway's memory and batch slots (src/gateway/). */
const m0002: Migration = {
  async up(db) {
    await db.schema
      .alterTable('adapters')
      .addColumn('pinned', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
  async down(db) {
    await db.schema.alterTable('adapters').dropColumn('pinned').execute();
  },
};

/**
 * What a successful training job does with the adapter's `production` alias (ALWAYS, IF_BETTER, NEVER;
 * src/training/promotion.ts). Jobs queued before this migration keep the old behaviour: NEVER.
 */
const m0003: Migration = {
  async up(db) {
    await db.schema
      .alterTable('training_jobs')
      .addColumn('promote', 'text', (c) => c.notNull().defaultTo('NEVER'))
      .execute();
  },
  async down(db) {
    await db.schema.alterTable('training_jobs').dropColumn('promote').execute();
  },
};

/** Columns of training_jobs as of 0001 + 0003, in order (the SQLite rebuild of 0004 copies them). */
const TRAINING_JOB_COLUMNS_0003 = [
  'id',
  'customer_id',
  'adapter_id',
  'dataset_id',
  'validation_dataset_id',
  'status',
  'hyperparameters',
  'progress',
  'loss_history',
  'error',
  'idempotency_key',
  'result_version_id',
  'attempts',
  'created_at',
  'started_at',
  'finished_at',
  'cancel_requested_at',
  'updated_at',
  'promote',
] as const;

/**
 * Derived versions and exports (docs/ADAPTERS.md, "Through the API"): jobs of other kinds than training share
 * training_jobs — `kind` (TRAINING | SHRINK | MERGE | EXPORT; rows from before are TRAINING), the operation's
 * `spec` (JSON), an export's `artifact` (JSON) and `artifact_expires_at` (what the sweeper deletes);
 * `dataset_id` becomes nullable (a derived job has no dataset). A derived version records its `derivation`
 * (JSON) and its parents, in order, with their weights (`adapter_version_parents`; no foreign key to the
 * parent, so deleting a parent keeps its id in the lineage).
 *
 * PostgreSQL drops the NOT NULL in place. SQLite cannot: the table is rebuilt (create, copy, drop, rename,
 * index) in one transaction, as sqlite.org/lang_altertable.html describes. No other table has a foreign key
 * into training_jobs, so dropping the old one touches nothing else.
 */
const m0004: Migration = {
  async up(db) {
    if (isPostgres(db)) {
      await db.schema
        .alterTable('training_jobs')
        .alterColumn('dataset_id', (c) => c.dropNotNull())
        .execute();
      await db.schema
        .alterTable('training_jobs')
        .addColumn('kind', 'text', (c) => c.notNull().defaultTo('TRAINING'))
        .addColumn('spec', 'text')
        .addColumn('artifact', 'text')
        .addColumn('artifact_expires_at', 'text')
        .execute();
    } else {
      await db.transaction().execute(async (tx) => {
        await tx.schema
          .createTable('training_jobs_0004')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id').onDelete('cascade'))
          .addColumn('adapter_id', 'text', (c) => c.notNull().references('adapters.id').onDelete('cascade'))
          .addColumn('dataset_id', 'text')
          .addColumn('validation_dataset_id', 'text')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('hyperparameters', 'text', (c) => c.notNull())
          .addColumn('progress', 'text')
          .addColumn('loss_history', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .addColumn('idempotency_key', 'text')
          .addColumn('result_version_id', 'text')
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text')
          .addColumn('finished_at', 'text')
          .addColumn('cancel_requested_at', 'text')
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('promote', 'text', (c) => c.notNull().defaultTo('NEVER'))
          .addColumn('kind', 'text', (c) => c.notNull().defaultTo('TRAINING'))
          .addColumn('spec', 'text')
          .addColumn('artifact', 'text')
          .addColumn('artifact_expires_at', 'text')
          .addUniqueConstraint('training_jobs_idempotency_uq', ['customer_id', 'idempotency_key'])
          .execute();
        const cols = sql.join(TRAINING_JOB_COLUMNS_0003.map((c) => sql.ref(c)));
        await sql`insert into training_jobs_0004 (${cols}) select ${cols} from training_jobs`.execute(tx);
        await tx.schema.dropTable('training_jobs').execute();
        await tx.schema.alterTable('training_jobs_0004').renameTo('training_jobs').execute();
        await tx.schema
          .createIndex('training_jobs_customer_idx')
          .on('training_jobs')
          .columns(['customer_id', 'status'])
          .execute();
      });
    }
    await db.schema
      .createIndex('training_jobs_artifact_expiry_idx')
      .on('training_jobs')
      .column('artifact_expires_at')
      .execute();
    await db.schema.alterTable('adapter_versions').addColumn('derivation', 'text').execute();
    await db.schema
      .createTable('adapter_version_parents')
      .addColumn('version_id', 'text', (c) =>
        c.notNull().references('adapter_versions.id').onDelete('cascade'),
      )
      .addColumn('ordinal', 'integer', (c) => c.notNull())
      .addColumn('parent_version_id', 'text', (c) => c.notNull())
      // float8 in PostgreSQL (its `real` is float4: a weight of 0.7 would not read back as 0.7).
      .addColumn('weight', isPostgres(db) ? 'double precision' : 'real', (c) => c.notNull())
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('adapter_version_parents_pk', ['version_id', 'ordinal'])
      .execute();
    await db.schema
      .createIndex('adapter_version_parents_parent_idx')
      .on('adapter_version_parents')
      .column('parent_version_id')
      .execute();
  },
  async down(db) {
    await db.schema.dropTable('adapter_version_parents').ifExists().execute();
    await db.schema.alterTable('adapter_versions').dropColumn('derivation').execute();
    await db.schema.dropIndex('training_jobs_artifact_expiry_idx').ifExists().execute();
    for (const c of ['artifact_expires_at', 'artifact', 'spec', 'kind'])
      await db.schema.alterTable('training_jobs').dropColumn(c).execute();
    // dataset_id stays nullable: derived jobs have none, so NOT NULL could not come back without deleting them.
  },
};

export const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_adapter_pinned': m0002,
  '0003_training_job_promote': m0003,
  '0004_derived_jobs': m0004,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => MIGRATIONS,
};
