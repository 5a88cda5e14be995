/**
 * A small YAML reader for infra/docker-compose.yml (no YAML package is installed): block maps and sequences,
 * flow sequences `[a, 'b']`, `{}`, single/double-quoted and plain scalars (all kept as strings), comments.
 * Anything else — anchors, aliases, tags, block scalars, tabs — is refused loudly, so the compose file stays
 * in the subset this checks. Not a general YAML parser; only test/infra uses it.
 */
export type Yaml = string | Yaml[] | { [key: string]: Yaml };

interface Line {
  no: number;
  indent: number;
  text: string;
}

class YamlError extends Error {
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

/** Drops a trailing comment outside quotes. */
function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = null;
    } else if (c === "'" || c === '"') q = c;
    else if (c === '#' && (i === 0 || s[i - 1] === ' ')) return s.slice(0, i).trimEnd();
  }
  return s.trimEnd();
}

function splitFlow(inner: string, no: number): string[] {
  const out: string[] = [];
  let cur = '';
  let q: string | null = null;
  for (const c of inner) {
    if (q) {
      cur += c;
      if (c === q) q = null;
    } else if (c === "'" || c === '"') {
      q = c;
      cur += c;
    } else if (c === ',') {
      out.push(cur.trim());
      cur = '';
    } else if (c === '[' || c === '{') throw new YamlError(no, 'nested flow collections are not supported');
    else cur += c;
  }
  if (q) throw new YamlError(no, 'unterminated quote');
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

function scalar(raw: string, no: number): Yaml {
  const s = raw.trim();
  if (s === '{}') return {};
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new YamlError(no, 'unterminated flow sequence');
    return splitFlow(s.slice(1, -1), no).map((x) => scalar(x, no));
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new YamlError(no, 'unterminated single quote');
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (s.startsWith('"')) return JSON.parse(s) as string;
  if (/^[&*!|>{%@`]/.test(s)) throw new YamlError(no, `unsupported YAML syntax: ${s.slice(0, 20)}`);
  return s;
}

export function parseYaml(source: string): Yaml {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    if (/^\s*\t/.test(raw)) throw new YamlError(i + 1, 'tab indentation');
    const text = stripComment(raw);
    if (text.trim() === '' || text.trim() === '---') return;
    lines.push({ no: i + 1, indent: text.length - text.trimStart().length, text: text.trim() });
  });
  let pos = 0;

  const block = (indent: number): Yaml => {
    const first = lines[pos]!;
    return first.text.startsWith('- ') || first.text === '-' ? seq(indent) : map(indent);
  };

  const valueAfterKey = (rest: string, line: Line, indent: number): Yaml => {
    if (rest !== '') return scalar(rest, line.no);
    const next = lines[pos];
    if (next === undefined) throw new YamlError(line.no, 'missing value');
    if (next.indent > indent && next.text.startsWith('[')) {
      // A flow sequence wrapped onto the following line(s), as prettier writes long ones.
      let text = '';
      while (pos < lines.length) {
        text += ` ${lines[pos]!.text}`;
        pos++;
        if (text.trimEnd().endsWith(']')) return scalar(text, next.no);
      }
      throw new YamlError(next.no, 'unterminated flow sequence');
    }
    if (next.indent > indent) return block(next.indent);
    if (next.indent === indent && next.text.startsWith('- ')) return seq(indent);
    throw new YamlError(line.no, 'missing value');
  };

  const keyValue = (text: string, no: number): [string, string] => {
    const m = /^([A-Za-z0-9_.\-/]+|'[^']*'|"[^"]*"):(?:\s+(.*)|)$/.exec(text);
    if (!m) throw new YamlError(no, `expected "key: value", got ${JSON.stringify(text.slice(0, 40))}`);
    const key = m[1]!.replace(/^['"]|['"]$/g, '');
    return [key, m[2] ?? ''];
  };

  function map(indent: number): { [key: string]: Yaml } {
    const out: { [key: string]: Yaml } = {};
    while (pos < lines.length) {
      const line = lines[pos]!;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new YamlError(line.no, 'unexpected indentation');
      if (line.text.startsWith('- ')) break;
      pos++;
      const [key, rest] = keyValue(line.text, line.no);
      if (key === '<<') throw new YamlError(line.no, 'merge keys are not supported');
      if (Object.hasOwn(out, key)) throw new YamlError(line.no, `duplicate key ${key}`);
      out[key] = valueAfterKey(rest, line, indent);
    }
    return out;
  }

  function seq(indent: number): Yaml[] {
    const out: Yaml[] = [];
    while (pos < lines.length) {
      const line = lines[pos]!;
      if (line.indent !== indent || !(line.text.startsWith('- ') || line.text === '-')) break;
      pos++;
      const rest = line.text.slice(1).trim();
      if (/^[A-Za-z0-9_.\-/]+:(\s|$)/.test(rest)) {
        // "- key: value" starts a map whose other keys sit two columns in.
        const [key, value] = keyValue(rest, line.no);
        const item: { [key: string]: Yaml } = { [key]: valueAfterKey(value, line, indent + 2) };
        const more = lines[pos];
        if (more && more.indent === indent + 2 && !more.text.startsWith('- '))
          Object.assign(item, map(indent + 2));
        out.push(item);
      } else if (rest === '') {
        out.push(block(lines[pos]!.indent));
      } else out.push(scalar(rest, line.no));
    }
    return out;
  }

  const result = lines.length === 0 ? {} : block(lines[0]!.indent);
  if (pos !== lines.length) throw new YamlError(lines[pos]!.no, 'unexpected content');
  return result;
}
