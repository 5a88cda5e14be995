/**
 * A small strict JSON parser for untrusted headers: RFC 8259 grammar, but duplicate object keys and
 * nesting deeper than `maxDepth` are errors (JSON.parse silently keeps the last duplicate, and deep
 * nesting would overflow the stack), and so is a string whose escapes leave a lone UTF-16 surrogate. Not
 * a general-purpose parser: use JSON.parse for trusted files. Used by `safetensors.ts`.
 */

export class StrictJsonError extends Error {
  constructor(message: string, at: number) {
    super(`${message} at offset ${at}`);
    this.name = 'StrictJsonError';
  }
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

export function parseStrictJson(text: string, opts: { maxDepth?: number } = {}): unknown {
  const maxDepth = opts.maxDepth ?? 64;
  let i = 0;

  const ws = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };

  const str = (): string => {
    const start = i;
    let plain = true; // no escapes, no raw control characters: the literal is its own value
    i++; // opening quote
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c < 0x20 || c === 0x5c) plain = false;
      if (c === 0x22) {
        i++;
        let decoded: string;
        if (plain) decoded = text.slice(start + 1, i - 1);
        else {
          try {
            // JSON.parse on the literal alone decodes escapes and rejects raw control characters.
            decoded = JSON.parse(text.slice(start, i)) as string;
          } catch {
            throw new StrictJsonError('invalid string literal', start);
          }
        }
        // Half a surrogate pair ("\ud800", escaped or raw) is not a character, has no UTF-8 encoding, and
        // the reference parser (serde_json) refuses it.
        if (LONE_SURROGATE.test(decoded)) throw new StrictJsonError('lone surrogate in string', start);
        return decoded;
      }
      i += c === 0x5c ? 2 : 1;
    }
    throw new StrictJsonError('unterminated string', start);
  };

  const value = (depth: number): unknown => {
    ws();
    if (i >= text.length) throw new StrictJsonError('unexpected end of input', i);
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) throw new StrictJsonError(`nesting deeper than ${maxDepth}`, i);
      i++;
      ws();
      if (c === '[') {
        const arr: unknown[] = [];
        if (text[i] === ']') {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[i] === ',') i++;
          else if (text[i] === ']') {
            i++;
            return arr;
          } else throw new StrictJsonError("expected ',' or ']'", i);
        }
      }
      // Null prototype: a key named "__proto__" is an ordinary key, not a prototype change.
      const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      const seen = new Set<string>();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') throw new StrictJsonError('expected a string key', i);
        const at = i;
        const key = str();
        if (seen.has(key)) throw new StrictJsonError(`duplicate key ${JSON.stringify(key)}`, at);
        seen.add(key);
        ws();
        if (text[i] !== ':') throw new StrictJsonError("expected ':'", i);
        i++;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return obj;
        } else throw new StrictJsonError("expected ',' or '}'", i);
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUMBER_RE.lastIndex = i;
    const m = NUMBER_RE.exec(text);
    if (m && m[0].length > 0) {
      i += m[0].length;
      return Number(m[0]);
    }
    throw new StrictJsonError(`unexpected character ${JSON.stringify(c)}`, i);
  };

  const v = value(0);
  ws();
  if (i !== text.length) throw new StrictJsonError('trailing characters after the JSON value', i);
  return v;
}
