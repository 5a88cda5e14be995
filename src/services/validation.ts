/**
 * Input rules shared by the services: adapter and alias names (they appear in `name@alias` references and
 * must never carry path characters), free-text labels, quotas. Each failure is a BadInputError naming the
 * field, so the client sees BAD_USER_INPUT with a useful message.
 */
import { BadInputError } from '../shared/errors.js';

export const ADAPTER_NAME_RE = /^[a-z0-9][a-z0-9-_]{0,62}$/;
/** Alias names: like adapter names, but `v<digits>` is reserved for `name@v3` version references. */
export const ALIAS_NAME_RE = ADAPTER_NAME_RE;
const VERSION_REF_RE = /^v\d+$/;

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function validateAdapterName(name: string): string {
  if (!ADAPTER_NAME_RE.test(name)) {
    throw new BadInputError(
      `adapter name must match ${ADAPTER_NAME_RE.source} (lowercase letters, digits, '-' and '_', at most 63)`,
      { details: { field: 'name' } },
    );
  }
  return name;
}

export function validateAliasName(alias: string): string {
  if (!ALIAS_NAME_RE.test(alias) || VERSION_REF_RE.test(alias)) {
    throw new BadInputError(
      `alias must match ${ALIAS_NAME_RE.source} and not look like a version number (v1, v2, …)`,
      { details: { field: 'alias' } },
    );
  }
  return alias;
}

/** Display names (customers, datasets, keys): 1-200 characters, no control characters. */
export function validateLabel(value: string, what: string, max = 200): string {
  const trimmed = value.trim();
  if (trimmed.length === 0 || trimmed.length > max || CONTROL.test(value)) {
    throw new BadInputError(`${what} must be 1-${max} characters without control characters`);
  }
  return trimmed;
}

/** The size a presigned upload promises: an integer 1-`max` bytes (the PUT must then send exactly that). */
export function validateSizeBytes(value: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new BadInputError(`sizeBytes must be an integer 1-${max} (got ${value})`);
  }
  return value;
}

export function validateQuota(
  value: number | null | undefined,
  what: string,
  fallback: number,
  max: number,
): number {
  if (value === null || value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new BadInputError(`${what} must be an integer 0-${max} (got ${value})`);
  }
  return value;
}
