/**
 * `DELTAGATE_LOG_FORMAT=pretty`: pino's JSON lines turned into one readable line each for a person at a
 * terminal — `12:03:04.512 INFO  [api] request method=POST path=/v1/completions status=200 ms=41.2` — with
 * the level coloured when the output is a TTY and an error's stack on the lines below. A pino destination
 * (no worker thread, no extra package): `createLogger(level, service, prettyDestination())`. The default
 * format stays JSON, for log shippers.
 */
import type { DestinationStream } from 'pino';

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\x1b[90m'],
  20: ['DEBUG', '\x1b[36m'],
  30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'],
  50: ['ERROR', '\x1b[31m'],
  60: ['FATAL', '\x1b[35m'],
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
/** pino's own fields, shown in the line's head or not at all. */
const HEAD = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service', 'err']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

function time(t: unknown): string {
  const d = new Date(typeof t === 'number' ? t : Date.now());
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** One pino JSON line as one readable line (plus an error's stack); anything unparsable as it is. */
export function formatLogLine(line: string, color = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const [name, tint] = LEVELS[Number(o.level)] ?? [String(o.level).toUpperCase().padEnd(5), ''];
  const level = color ? `${tint}${name}${RESET}` : name;
  const service = typeof o.service === 'string' ? ` [${o.service}]` : '';
  const fields = Object.entries(o)
    .filter(([k]) => !HEAD.has(k))
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  const rest = fields === '' ? '' : ` ${color ? `${DIM}${fields}${RESET}` : fields}`;
  let out = `${time(o.time)} ${level}${service} ${String(o.msg ?? '')}${rest}\n`;
  const err = o.err as { message?: string; stack?: string; type?: string } | undefined;
  if (err && typeof err === 'object') {
    const stack = err.stack ?? `${err.type ?? 'Error'}: ${err.message ?? ''}`;
    out += stack
      .split('\n')
      .map((l) => `    ${l}\n`)
      .join('');
  }
  return out;
}

/** A pino destination writing `formatLogLine` of each line to `out` (stdout by default). */
export function prettyDestination(
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): DestinationStream {
  const color = out.isTTY === true;
  return {
    write(line: string) {
      out.write(formatLogLine(line, color));
    },
  };
}
