/**
 * Prefixed, time-ordered random ids (`cus_…`, `key_…`, `ds_…`, `ada_…`, `adv_…`, `job_…`, `upl_…`).
 * 48 bits of milliseconds then 80 random bits in Crockford base32, so ids of one kind sort by creation time
 * and the repositories can paginate by id alone. Not secrets: API key secrets live in services/api-keys.ts.
 */
import { randomBytes } from 'node:crypto';

export const ID_PREFIXES = {
  customer: 'cus',
  apiKey: 'key',
  dataset: 'ds',
  upload: 'upl',
  adapter: 'ada',
  adapterVersion: 'adv',
  trainingJob: 'job',
} as const;
export type IdKind = keyof typeof ID_PREFIXES;

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

let lastTime = -1;
const lastRandom = new Uint8Array(10);

/**
 * 16 bytes → 26 characters; the first 10 carry the timestamp so ids sort by creation. Within one
 * millisecond the random part is incremented instead of redrawn (monotonic ULID), so ids made by one
 * process sort in creation order even when they share a millisecond.
 */
export function newId(kind: IdKind, now = Date.now()): string {
  const bytes = new Uint8Array(16);
  if (now <= lastTime) {
    now = lastTime;
    for (let i = lastRandom.length - 1; i >= 0; i--) {
      lastRandom[i] = (lastRandom[i]! + 1) & 0xff;
      if (lastRandom[i] !== 0) break;
    }
  } else {
    lastTime = now;
    lastRandom.set(randomBytes(10));
    lastRandom[0]! &= 0x7f; // headroom so increments never wrap within a millisecond
  }
  let t = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = t % 256;
    t = Math.floor(t / 256);
  }
  bytes.set(lastRandom, 6);
  return `${ID_PREFIXES[kind]}_${base32(bytes)}`;
}

const ID_RE = /^[a-z]{2,3}_[0-9a-hjkmnp-tv-z]{26}$/;

/** True when `id` is shaped like an id of `kind`; anything else can be answered NOT_FOUND without a query. */
export function isIdOf(kind: IdKind, id: string): boolean {
  return ID_RE.test(id) && id.startsWith(`${ID_PREFIXES[kind]}_`);
}

const KNOWN_PREFIXES: ReadonlySet<string> = new Set(Object.values(ID_PREFIXES));

/** True when `id` is shaped like an id of any kind (ASCII only: never a NUL or a control character). */
export function isAnyId(id: string): boolean {
  return ID_RE.test(id) && KNOWN_PREFIXES.has(id.slice(0, id.indexOf('_')));
}
