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

/**
 * What no stored or identifying string may hold: C0 control characters other than tab, LF and CR (NUL above
 * all: PostgreSQL text cannot store it), DEL, and lone UTF-16 surrogates (not representable in UTF-8; the
 * driver would silently turn them into U+FFFD).
 */
const FORBIDDEN_IN_TEXT =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True when `value` holds something `validateText` refuses. */
export function hasForbiddenCharacters(value: string): boolean {
  return FORBIDDEN_IN_TEXT.test(value);
}

/**
 * Any free-form string that is stored or used as a key (descriptions, idempotency keys, …): BAD_USER_INPUT
 * naming `field` when it holds a NUL, another control character (tab and newlines are fine) or a lone
 * surrogate. Stricter rules (names, labels) come on top.
 */
export function validateText(value: string, field: string): string {
  const m = FORBIDDEN_IN_TEXT.exec(value);
  if (m !== null) {
    const code = m[0].charCodeAt(0).toString(16).padStart(4, '0');
    throw new BadInputError(
      `${field} must not contain control characters or unpaired surrogates (found U+${code.toUpperCase()} at ${m.index})`,
      { details: { field } },
    );
  }
  return value;
}

/**
 * Strict base64 (RFC 4648 §4, the standard alphabet, padded): exactly what `Buffer#toString('base64')` writes
 * for the decoded bytes. No whitespace or line breaks (MIME wrapping), no URL-safe characters, no missing or
 * misplaced padding, no non-zero unused bits — `Buffer.from(text, 'base64')` would silently skip or repair all
 * of these and turn garbage into "valid" bytes. The length is checked before anything is decoded.
 */
export function decodeStrictBase64(text: string, maxBytes: number, field = 'weightsBase64'): Uint8Array {
  if (text.length > Math.ceil(maxBytes / 3) * 4) {
    throw new BadInputError(`${field}: the data is larger than the limit of ${maxBytes} bytes`, {
      details: { field },
    });
  }
  if (text.length === 0) throw new BadInputError(`${field} is empty`, { details: { field } });
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) {
    const bad = /[^A-Za-z0-9+/=]/.exec(text);
    const why =
      bad === null
        ? 'bad padding or length (standard, padded base64 only)'
        : /\s/.test(bad[0])
          ? `${bad[0] === '\n' || bad[0] === '\r' ? 'a line break' : 'whitespace'} at offset ${bad.index}`
          : `character ${JSON.stringify(bad[0])} at offset ${bad.index}`;
    throw new BadInputError(`${field} is not strict base64: ${why}`, { details: { field } });
  }
  if (bytes.byteLength > maxBytes) {
    throw new BadInputError(`${field}: the data is larger than the limit of ${maxBytes} bytes`, {
      details: { field },
    });
  }
  return bytes;
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
