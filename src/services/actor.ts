/**
 * Who is calling, and the ONE authorization layer every service method goes through: `scopeOf` turns the
 * caller into the repository scope (a customer only ever queries its own rows, so another tenant's id is
 * NOT_FOUND by construction), `requireAdmin` / `requireCustomer` gate what only one role may do.
 * Authentication (turning a bearer key into an Actor) is api-keys.ts.
 */
import { ALL, tenant, type Scope } from '../db/repositories/scope.js';
import { ForbiddenError, UnauthenticatedError } from '../shared/errors.js';

export type Actor =
  | { readonly role: 'ADMIN' }
  | { readonly role: 'CUSTOMER'; readonly customerId: string; readonly apiKeyId: string };

export type CustomerActor = Extract<Actor, { role: 'CUSTOMER' }>;

export const ADMIN: Actor = { role: 'ADMIN' };

/** Every read and write derives its repository scope here. */
export function scopeOf(actor: Actor | null): Scope {
  if (actor === null) throw new UnauthenticatedError();
  return actor.role === 'ADMIN' ? ALL : tenant(actor.customerId);
}

export function requireAdmin(actor: Actor | null): void {
  if (actor === null) throw new UnauthenticatedError();
  if (actor.role !== 'ADMIN') throw new ForbiddenError('this operation needs the admin key');
}

/**
 * Tenant-owned objects (datasets, adapters, versions, jobs) are created by the customer that will own them,
 * with its own key; the admin key manages customers and keys but does not act on a tenant's behalf.
 */
export function requireCustomer(actor: Actor | null): CustomerActor {
  if (actor === null) throw new UnauthenticatedError();
  if (actor.role !== 'CUSTOMER') throw new ForbiddenError('this operation needs a customer API key');
  return actor;
}
