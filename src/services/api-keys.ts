/**
 * API keys: `dg_live_` + 32 random bytes (base64url), shown once; only its sha256 is stored, found by a unique
 * prefix and compared with timingSafeEqual; revocation is effective on the next request (no cache).
 * `authenticate` turns an `Authorization` header into an Actor — the admin key is compared the same way.
 * The HTTP/WebSocket wiring that calls it is src/http/graphql.ts (`authorize`).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKey } from '../db/repositories/api-keys.js';
import type { Repositories } from '../db/repositories/index.js';
import { NotFoundError, UnauthenticatedError } from '../shared/errors.js';
import { scopeOf, type Actor } from './actor.js';
import { validateLabel } from './validation.js';

export const KEY_PREFIX = 'dg_live_';
/** Characters of the random part kept in the lookup prefix (~72 bits: collisions only in theory). */
const LOOKUP_CHARS = 12;
const SECRET_RE = /^dg_live_[A-Za-z0-9_-]{43}$/;

export interface CreatedApiKey {
  apiKey: ApiKey;
  /** The whole secret: returned once, never stored. */
  secret: string;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function generateSecret(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function lookupPrefix(secret: string): string {
  return secret.slice(0, KEY_PREFIX.length + LOOKUP_CHARS);
}

function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export class ApiKeysService {
  private readonly adminHash: Buffer | null;

  constructor(
    private readonly repos: Repositories,
    adminKey: string | null,
  ) {
    this.adminHash = adminKey === null ? null : sha256(adminKey);
  }

  /** `Authorization` header value → Actor. Missing, malformed, unknown and revoked keys are UNAUTHENTICATED. */
  async authenticate(authorization: string | null | undefined): Promise<Actor> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new UnauthenticatedError('missing API key: send Authorization: Bearer <key>');
    return this.authenticateKey(m[1]!);
  }

  async authenticateKey(key: string): Promise<Actor> {
    const hash = sha256(key);
    if (this.adminHash !== null && sameHash(hash, this.adminHash)) return { role: 'ADMIN' };
    if (!SECRET_RE.test(key)) throw new UnauthenticatedError();
    const row = await this.repos.apiKeys.findByPrefix(lookupPrefix(key));
    if (row === null || !sameHash(hash, Buffer.from(row.secretHash, 'hex'))) throw new UnauthenticatedError();
    if (row.revokedAt !== null) throw new UnauthenticatedError('API key revoked');
    // Best effort and throttled: last use is informational, not worth a write per request.
    if (row.lastUsedAt === null || Date.now() - Date.parse(row.lastUsedAt) > 60_000) {
      this.repos.apiKeys.touch(row.id).catch(() => undefined);
    }
    return { role: 'CUSTOMER', customerId: row.customerId, apiKeyId: row.id };
  }

  /** Admin: any customer. A customer: only itself (another customer's id is NOT_FOUND). */
  async create(
    actor: Actor,
    customerId: string,
    name: string | null,
    repos = this.repos,
  ): Promise<CreatedApiKey> {
    const customer = await repos.customers.findById(scopeOf(actor), customerId);
    if (customer === null) throw new NotFoundError('customer', customerId);
    if (name !== null) validateLabel(name, 'API key name');
    const secret = generateSecret();
    const apiKey = await repos.apiKeys.create({
      customerId,
      name,
      prefix: lookupPrefix(secret),
      secretHash: sha256(secret).toString('hex'),
    });
    return { apiKey, secret };
  }

  async revoke(actor: Actor, id: string): Promise<ApiKey> {
    const key = await this.repos.apiKeys.revoke(scopeOf(actor), id);
    if (key === null) throw new NotFoundError('API key', id);
    return key;
  }

  async get(actor: Actor, id: string): Promise<ApiKey> {
    const key = await this.repos.apiKeys.findById(scopeOf(actor), id);
    if (key === null) throw new NotFoundError('API key', id);
    return key;
  }

  async listForCustomer(actor: Actor, customerId: string, first: number, after: string | null) {
    return this.repos.apiKeys.listByCustomer(scopeOf(actor), customerId, { first, after });
  }

  /** For tests and the admin CLI: is this a well-formed customer secret? */
  static isWellFormed(secret: string): boolean {
    return SECRET_RE.test(secret);
  }
}
