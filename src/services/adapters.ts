/**
 * Adapters, their immutable numbered versions and movable aliases. `importVersion` validates a PEFT adapter
 * against the base model's config.json (src/engine/formats/peft.ts), stores it in the PEFT layout under
 * `adapterVersionPrefix` (create-only writes) and registers version max+1, retrying on a lost race.
 * `deleteVersion` refuses a version an alias points at (move the alias first), so `production` never dangles.
 */
import type { Logger } from 'pino';
import type { Adapter } from '../db/repositories/adapters.js';
import type {
  AdapterAlias,
  AdapterVersion,
  AdapterVersionParent,
  StoredFile,
} from '../db/repositories/adapter-versions.js';
import { AdapterVersionsRepository } from '../db/repositories/adapter-versions.js';
import { inTransaction, type Page, type Repositories, type Scope } from '../db/repositories/index.js';
import { UploadsRepository } from '../db/repositories/uploads.js';
import { isForeignKeyViolation, isUniqueViolation } from '../db/database.js';
import { isIdOf } from '../db/ids.js';
import { parsePeftAdapterOffThread } from '../engine/formats/peft-thread.js';
import { BlobExistsError, sha256Hex, sha256HexSliced, type BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES, adapterVersionPrefix, uploadKey } from '../storage/keys.js';
import {
  BadInputError,
  ConflictError,
  DeltagateError,
  NotFoundError,
  QuotaExceededError,
} from '../shared/errors.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import type { BaseModelRegistry } from './base-models.js';
import { KeyedMutex, Semaphore } from './semaphore.js';
import { deleteArtifactBlobs, forgetArtifactsOfVersion } from './export-artifacts.js';
import { storedBlobProblem } from './stored-blob.js';
import {
  ADAPTER_NAME_RE,
  decodeStrictBase64,
  validateAdapterName,
  validateAliasName,
  validateSizeBytes,
} from './validation.js';

export interface AdapterLimits {
  maxAdapterBytes: number;
  /** Imports this process validates and stores at once (each holds its weights in memory). Default 2. */
  concurrentImports?: number;
  /** Imports allowed to wait for their turn; one more is RATE_LIMITED. Default 256. */
  queuedImports?: number;
}

export interface ImportAdapterVersionInput {
  adapterId: string;
  adapterConfig: unknown;
  weightsBase64?: string | null;
  uploadId?: string | null;
}

export interface UploadTicket {
  uploadId: string;
  url: string;
  headers: Record<string, string>;
  expiresAt: Date;
}

const MAX_NUMBERING_ATTEMPTS = 8;
export const DOWNLOAD_URL_SECONDS = 3600;

/** Pinned adapters per customer (each holds host memory and a batch slot in every gateway process). */
export const MAX_PINNED_ADAPTERS = 4;

/** A stored adapter file whose bytes no longer hash to what was registered (or that is gone): not served. */
export class AdapterFileIntegrityError extends DeltagateError {
  constructor(versionId: string, file: string, why: string) {
    super(
      'INTERNAL_SERVER_ERROR',
      `adapter version ${versionId}: ${file} failed its SHA-256 check (${why}); refusing to serve it`,
      { details: { versionId, file } },
    );
  }
}

export class AdaptersService {
  /** Concurrent imports wait their turn (bounded); RATE_LIMITED only past `queuedImports` waiting. */
  private readonly importGate: Semaphore;
  /** Numbering and writing a new version: one import per adapter at a time in this process. */
  private readonly numbering = new KeyedMutex();

  constructor(
    private readonly repos: Repositories,
    private readonly blobs: BlobStore,
    private readonly baseModels: BaseModelRegistry,
    private readonly limits: AdapterLimits,
    private readonly logger: Logger,
  ) {
    this.importGate = new Semaphore(
      limits.concurrentImports ?? 2,
      limits.queuedImports ?? 256,
      'too many adapter imports at once',
    );
  }

  // --- adapters ---

  async create(
    actor: Actor,
    input: { name: string; baseModelId: string; description?: string | null },
  ): Promise<Adapter> {
    const { customerId } = requireCustomer(actor);
    const name = validateAdapterName(input.name);
    this.baseModels.require(input.baseModelId);
    const description = input.description ?? null;
    if (description !== null && description.length > 2000) {
      throw new BadInputError('description must be at most 2000 characters');
    }
    try {
      return await inTransaction(this.repos.db, async (tx) => {
        await tx.customers.lockForUpdate(customerId);
        const customer = await tx.customers.findById(scopeOf(actor), customerId);
        if (customer === null) throw new NotFoundError('customer', customerId);
        // A taken name is CONFLICT even at the quota; the UNIQUE constraint backs this check up.
        if ((await tx.adapters.findByName(customerId, name)) !== null) {
          throw new ConflictError(`an adapter named ${name} already exists`);
        }
        const count = await tx.adapters.countForCustomer(customerId);
        if (count >= customer.maxAdapters) {
          throw new QuotaExceededError(
            `customer has ${count} adapters, the quota is ${customer.maxAdapters}`,
          );
        }
        return tx.adapters.insert({ customerId, name, baseModelId: input.baseModelId, description });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`an adapter named ${name} already exists`);
      throw err;
    }
  }

  /**
   * The owner pins (or unpins) an adapter: its served version stays in the gateway's host memory and keeps a
   * side-load slot. At most MAX_PINNED_ADAPTERS per customer (QUOTA_EXCEEDED), so pins cannot starve others.
   */
  async setPinned(actor: Actor, adapterId: string, pinned: boolean): Promise<Adapter> {
    const { customerId } = requireCustomer(actor);
    return inTransaction(this.repos.db, async (tx) => {
      await tx.customers.lockForUpdate(customerId);
      const adapter = await tx.adapters.findById(scopeOf(actor), adapterId);
      if (adapter === null) throw new NotFoundError('adapter', adapterId);
      if (pinned && !adapter.pinned && (await tx.adapters.countPinned(customerId)) >= MAX_PINNED_ADAPTERS)
        throw new QuotaExceededError(`at most ${MAX_PINNED_ADAPTERS} adapters can be pinned per customer`);
      await tx.adapters.setPinned(scopeOf(actor), adapterId, pinned);
      return { ...adapter, pinned };
    });
  }

  async get(actor: Actor, id: string): Promise<Adapter> {
    const a = await this.repos.adapters.findById(scopeOf(actor), id);
    if (a === null) throw new NotFoundError('adapter', id);
    return a;
  }

  async getMany(actor: Actor, ids: readonly string[]): Promise<Adapter[]> {
    return this.repos.adapters.findByIds(scopeOf(actor), ids);
  }

  /** Names are per customer, so only a customer key can look one up. */
  async getByName(actor: Actor, name: string): Promise<Adapter> {
    const { customerId } = requireCustomer(actor);
    // A name that could never be valid is NOT_FOUND without a query.
    const a = ADAPTER_NAME_RE.test(name) ? await this.repos.adapters.findByName(customerId, name) : null;
    if (a === null) throw new NotFoundError('adapter', name);
    return a;
  }

  async list(actor: Actor, first: number, after: string | null): Promise<Page<Adapter>> {
    return this.repos.adapters.list(scopeOf(actor), { first, after });
  }

  // --- versions ---

  async getVersion(actor: Actor, id: string): Promise<AdapterVersion> {
    const v = await this.repos.adapterVersions.findById(scopeOf(actor), id);
    if (v === null) throw new NotFoundError('adapter version', id);
    return v;
  }

  async getVersions(actor: Actor, ids: readonly string[]): Promise<AdapterVersion[]> {
    return this.repos.adapterVersions.findByIds(scopeOf(actor), ids);
  }

  /** Versions of several adapters at once (DataLoader), ascending by number. */
  async versionsOf(actor: Actor, adapterIds: readonly string[]): Promise<AdapterVersion[]> {
    return this.repos.adapterVersions.listByAdapters(scopeOf(actor), adapterIds);
  }

  /** The parents of derived versions (DataLoader), by version then order. */
  async parentsOf(actor: Actor, versionIds: readonly string[]): Promise<AdapterVersionParent[]> {
    return this.repos.adapterVersions.parentsOf(scopeOf(actor), versionIds);
  }

  async aliasesOf(actor: Actor, adapterIds: readonly string[]): Promise<AdapterAlias[]> {
    return this.repos.adapterVersions.listAliases(scopeOf(actor), adapterIds);
  }

  /**
   * A presigned GET of the version's adapter_model.safetensors — only after the stored file is read and its
   * SHA-256 matches the one recorded at registration (a corrupted or missing file is refused, logged, and
   * never handed out). Reading costs one pass over the file (at most DELTAGATE_MAX_ADAPTER_BYTES), streamed.
   */
  async downloadUrl(actor: Actor, version: AdapterVersion): Promise<{ url: string; expiresAt: Date }> {
    scopeOf(actor);
    const key = version.blobPrefix + ADAPTER_FILES.weights;
    await this.verifyStoredWeights(version, key);
    return this.blobs.presignGet(key, { expiresInSeconds: DOWNLOAD_URL_SECONDS });
  }

  private async verifyStoredWeights(version: AdapterVersion, key: string): Promise<void> {
    const refuse = (why: string): never => {
      const err = new AdapterFileIntegrityError(version.id, ADAPTER_FILES.weights, why);
      this.logger.error({ versionId: version.id, key, why }, err.message);
      throw err;
    };
    const recorded = version.files.find((f) => f.name === ADAPTER_FILES.weights)?.sha256 ?? version.sha256;
    if (recorded !== version.sha256) refuse('the recorded checksums disagree');
    const problem = await storedBlobProblem(this.blobs, key, {
      sizeBytes: version.sizeBytes,
      sha256: recorded,
    });
    if (problem !== null) refuse(problem);
  }

  /** A presigned PUT for adapter weights too large to send inline; pass the id to `importVersion`. */
  async createWeightsUpload(actor: Actor, input: { sizeBytes: number }): Promise<UploadTicket> {
    const { customerId } = requireCustomer(actor);
    validateSizeBytes(input.sizeBytes, this.limits.maxAdapterBytes);
    const uploadId = UploadsRepository.newId();
    const blobKey = uploadKey(customerId, uploadId);
    const presigned = await this.blobs.presignPut(blobKey, {
      expiresInSeconds: 3600,
      contentLength: input.sizeBytes,
      contentType: 'application/octet-stream',
    });
    await this.repos.uploads.insert({
      id: uploadId,
      customerId,
      kind: 'ADAPTER_WEIGHTS',
      blobKey,
      sizeBytes: input.sizeBytes,
      datasetId: null,
      expiresAt: presigned.expiresAt.toISOString(),
    });
    return { uploadId, url: presigned.url, headers: presigned.headers, expiresAt: presigned.expiresAt };
  }

  /**
   * Import a PEFT adapter as the next version. Everything is validated before anything is written; a
   * failure after the first write removes what this call wrote (never another call's files). Imports run
   * `concurrentImports` at a time per process; the rest wait their turn (RATE_LIMITED only when
   * `queuedImports` already wait), and imports of one adapter number their versions one after another.
   */
  async importVersion(actor: Actor, input: ImportAdapterVersionInput): Promise<AdapterVersion> {
    requireCustomer(actor);
    return this.importGate.run(() => this.importNow(actor, input));
  }

  private async importNow(actor: Actor, input: ImportAdapterVersionInput): Promise<AdapterVersion> {
    const { customerId } = requireCustomer(actor);
    const scope = scopeOf(actor);
    const adapter = await this.repos.adapters.findById(scope, input.adapterId);
    if (adapter === null) throw new NotFoundError('adapter', input.adapterId);
    const hasInline = input.weightsBase64 !== null && input.weightsBase64 !== undefined;
    const hasUpload = input.uploadId !== null && input.uploadId !== undefined;
    if (hasInline === hasUpload) throw new BadInputError('give exactly one of weightsBase64 and uploadId');

    let weights: Uint8Array;
    let uploadId: string | null = null;
    if (hasInline) {
      weights = decodeStrictBase64(input.weightsBase64!, this.limits.maxAdapterBytes);
    } else {
      const upload = await this.repos.uploads.findById(scope, input.uploadId!);
      if (upload === null || upload.kind !== 'ADAPTER_WEIGHTS')
        throw new NotFoundError('upload', input.uploadId!);
      const head = await this.blobs.head(upload.blobKey);
      if (head === null) throw new BadInputError(`nothing has been uploaded for upload ${upload.id} yet`);
      if (head.size !== upload.sizeBytes || head.size > this.limits.maxAdapterBytes) {
        throw new BadInputError(`uploaded ${head.size} bytes, but the upload declared ${upload.sizeBytes}`);
      }
      weights = await this.blobs.get(upload.blobKey);
      uploadId = upload.id;
    }

    const base = this.baseModels.require(adapter.baseModelId);
    const parsed = await parsePeftAdapterOffThread(input.adapterConfig, weights, base.modelConfig);
    const configBytes = Buffer.from(JSON.stringify(input.adapterConfig, null, 2) + '\n', 'utf8');
    const files: StoredFile[] = [
      { name: ADAPTER_FILES.config, sizeBytes: configBytes.byteLength, sha256: sha256Hex(configBytes) },
      { name: ADAPTER_FILES.weights, sizeBytes: weights.byteLength, sha256: await sha256HexSliced(weights) },
    ];

    return this.numbering.run(adapter.id, () =>
      this.storeNextVersion(customerId, scope, adapter, parsed, configBytes, weights, files, uploadId),
    );
  }

  /** Writes the files under the next free number and registers it; another process may race (retried). */
  private async storeNextVersion(
    customerId: string,
    scope: Scope,
    adapter: Adapter,
    parsed: { rank: number; alpha: number; targetModules: readonly string[] },
    configBytes: Uint8Array,
    weights: Uint8Array,
    files: StoredFile[],
    uploadId: string | null,
  ): Promise<AdapterVersion> {
    let version = await this.repos.adapterVersions.nextVersionNumber(adapter.id);
    for (let attempt = 0; attempt < MAX_NUMBERING_ATTEMPTS; attempt++) {
      const prefix = adapterVersionPrefix(customerId, adapter.id, version);
      let wrote = false;
      try {
        // Create-only: if another import already holds this number's files, take the next number.
        await this.blobs.put(prefix + ADAPTER_FILES.config, configBytes, {
          ifNoneMatch: true,
          contentType: 'application/json',
        });
        wrote = true;
        await this.blobs.put(prefix + ADAPTER_FILES.weights, weights, {
          ifNoneMatch: true,
          sha256: files[1]!.sha256,
          contentType: 'application/octet-stream',
        });
        const row = await inTransaction(this.repos.db, async (tx) => {
          const v = await tx.adapterVersions.insert({
            id: AdapterVersionsRepository.newId(),
            adapterId: adapter.id,
            customerId,
            version,
            sha256: files[1]!.sha256,
            sizeBytes: weights.byteLength,
            rank: parsed.rank,
            alpha: parsed.alpha,
            targetModules: [...parsed.targetModules],
            metrics: null,
            files,
            trainingJobId: null,
            datasetId: null,
            blobPrefix: prefix,
          });
          if (uploadId !== null) await tx.uploads.delete(scope, uploadId);
          return v;
        });
        if (uploadId !== null)
          await this.blobs.delete(uploadKey(customerId, uploadId)).catch(() => undefined);
        return row;
      } catch (err) {
        const lost = err instanceof BlobExistsError || isUniqueViolation(err);
        if (!(err instanceof BlobExistsError && !wrote)) await this.removePrefix(prefix, wrote);
        if (!lost) throw err;
        // Another process took this number: go past it and past whatever it registered meanwhile.
        version = Math.max(version + 1, await this.repos.adapterVersions.nextVersionNumber(adapter.id));
      }
    }
    throw new ConflictError(
      `could not number a new version of adapter ${adapter.id}: too many concurrent imports`,
    );
  }

  // --- aliases ---

  async setAlias(
    actor: Actor,
    input: { adapterId: string; alias: string; versionId: string },
  ): Promise<Adapter> {
    const { customerId } = requireCustomer(actor);
    const scope = scopeOf(actor);
    const alias = validateAliasName(input.alias);
    const adapter = await this.repos.adapters.findById(scope, input.adapterId);
    if (adapter === null) throw new NotFoundError('adapter', input.adapterId);
    const version = await this.repos.adapterVersions.findById(scope, input.versionId);
    if (version === null) throw new NotFoundError('adapter version', input.versionId);
    if (version.adapterId !== adapter.id) {
      throw new BadInputError(`version ${version.id} belongs to another adapter than ${adapter.id}`);
    }
    try {
      await this.repos.adapterVersions.setAlias({
        adapterId: adapter.id,
        alias,
        versionId: version.id,
        customerId,
      });
    } catch (err) {
      // The version was deleted between the check and the write.
      if (isForeignKeyViolation(err)) throw new NotFoundError('adapter version', input.versionId);
      throw err;
    }
    return adapter;
  }

  /**
   * Refuses (CONFLICT) while an alias points at the version; the row goes first, then its files, and the
   * model exports made from it (src/services/export-artifacts.ts). Versions derived from it keep its id in
   * their lineage (`parents`).
   */
  async deleteVersion(actor: Actor, id: string): Promise<boolean> {
    const scope = scopeOf(actor);
    const { version, exports } = await this.deleteVersionRow(scope, id).catch((err: unknown) => {
      // An alias was pointed at it between the check and the delete: the same answer as the check's.
      if (isForeignKeyViolation(err))
        throw new ConflictError(`version ${id} was just aliased; move the alias first`);
      throw err;
    });
    await this.removePrefix(version.blobPrefix, true);
    for (const e of exports) await deleteArtifactBlobs(this.blobs, this.logger, e.customerId, e.jobId);
    return true;
  }

  private async deleteVersionRow(
    scope: Scope,
    id: string,
  ): Promise<{ version: AdapterVersion; exports: { customerId: string; jobId: string }[] }> {
    return inTransaction(this.repos.db, async (tx) => {
      const v = await tx.adapterVersions.findById(scope, id);
      if (v === null) throw new NotFoundError('adapter version', id);
      // The lock an export's registration takes too: an export of this version finishing now keeps nothing.
      await tx.customers.lockForUpdate(v.customerId);
      const aliases = await tx.adapterVersions.aliasesOfVersion(v.id);
      if (aliases.length > 0) {
        throw new ConflictError(
          `version ${v.version} is aliased as ${aliases.join(', ')}; move the alias first`,
        );
      }
      if (!(await tx.adapterVersions.delete(scope, v.id))) throw new NotFoundError('adapter version', id);
      return { version: v, exports: await forgetArtifactsOfVersion(tx, v.adapterId, v.id) };
    });
  }

  /**
   * Resolves a generation reference (PRODUCT.md): "name" (its `production` alias, else its latest version),
   * "name@alias", "name@v3", or an AdapterVersion id. NOT_FOUND when nothing matches in the caller's tenant.
   */
  async resolveReference(actor: Actor, ref: string): Promise<AdapterVersion> {
    const scope = scopeOf(actor);
    if (isIdOf('adapterVersion', ref)) return this.getVersion(actor, ref);
    const at = ref.indexOf('@');
    const name = at === -1 ? ref : ref.slice(0, at);
    const selector = at === -1 ? null : ref.slice(at + 1);
    const adapter = await this.getByName(actor, name);
    const numbered = selector === null ? null : /^v(\d+)$/.exec(selector);
    if (numbered) {
      const v = await this.repos.adapterVersions.findByNumber(scope, adapter.id, Number(numbered[1]));
      if (v === null) throw new NotFoundError('adapter version', ref);
      return v;
    }
    const aliases = await this.repos.adapterVersions.listAliases(scope, [adapter.id]);
    const alias = aliases.find((a) => a.alias === (selector ?? 'production'));
    if (alias) return this.getVersion(actor, alias.versionId);
    if (selector !== null) throw new NotFoundError('adapter alias', ref);
    const versions = await this.repos.adapterVersions.listByAdapters(scope, [adapter.id]);
    const latest = versions.at(-1);
    if (latest === undefined)
      throw new NotFoundError('adapter version', `${ref} (the adapter has no versions)`);
    return latest;
  }

  private async removePrefix(prefix: string, wrote: boolean): Promise<void> {
    if (!wrote) return;
    try {
      await this.blobs.deletePrefix(prefix);
    } catch (err) {
      this.logger.warn({ err, prefix }, 'could not remove adapter version files');
    }
  }
}
