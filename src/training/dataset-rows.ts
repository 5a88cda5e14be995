/**
 * Validation of the three JSONL dataset formats (PROMPT_COMPLETION, CHAT, TEXT) into typed rows with
 * 1-based, line-numbered errors. Pure and streaming over the bytes (no whole-file decode), linear in the
 * size, so it stays fast on the 100 MB limit; `validateDatasetAsync` runs the same steps in event-loop
 * slices. Not tokenization or chat templating: those live with the trainer in `src/training/`; storing
 * datasets and their status is `src/services/`.
 */
import { TimeSlice } from '../shared/time-slice.js';

export type DatasetFormat = 'PROMPT_COMPLETION' | 'CHAT' | 'TEXT';
export const DATASET_FORMATS: readonly DatasetFormat[] = ['PROMPT_COMPLETION', 'CHAT', 'TEXT'];

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface PromptCompletionRow {
  prompt: string;
  completion: string;
}
export interface ChatRow {
  messages: ChatMessage[];
}
export interface TextRow {
  text: string;
}
export type DatasetRow = PromptCompletionRow | ChatRow | TextRow;

/** `line` is 1-based; 0 means the dataset as a whole (size, no rows). */
export interface DatasetError {
  line: number;
  message: string;
}

export interface DatasetLimits {
  /** Whole dataset; default 100 MiB. */
  maxBytes?: number;
  /** One line; default 4 MiB. */
  maxLineBytes?: number;
  /** Errors kept; past it one final "… N more errors" entry. Default 100. */
  maxErrors?: number;
}

export interface DatasetValidation {
  ok: boolean;
  rows: DatasetRow[];
  rowCount: number;
  sizeBytes: number;
  errors: DatasetError[];
}

export const DEFAULT_DATASET_LIMITS: Required<DatasetLimits> = {
  maxBytes: 100 * 1024 * 1024,
  maxLineBytes: 4 * 1024 * 1024,
  maxErrors: 100,
};

const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant']);
const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The fields must be exactly `fields`, each a non-empty string. Returns a problem or null. */
function checkStringFields(
  obj: Record<string, unknown>,
  fields: readonly string[],
  where = '',
): string | null {
  for (const f of fields) {
    if (!Object.hasOwn(obj, f)) return `${where}missing field "${f}"`;
    const v = obj[f];
    if (typeof v !== 'string') return `${where}field "${f}" must be a string (got ${typeName(v)})`;
    if (v.trim() === '') return `${where}field "${f}" must not be empty`;
  }
  for (const k of Object.keys(obj)) {
    if (!fields.includes(k))
      return `${where}unexpected field "${k}" (expected only ${fields.map((f) => `"${f}"`).join(', ')})`;
  }
  return null;
}

function checkRow(value: unknown, format: DatasetFormat): { row: DatasetRow } | { error: string } {
  if (!isRecord(value)) return { error: `each line must be a JSON object (got ${typeName(value)})` };
  switch (format) {
    case 'PROMPT_COMPLETION': {
      const p = checkStringFields(value, ['prompt', 'completion']);
      return p === null
        ? { row: { prompt: value.prompt as string, completion: value.completion as string } }
        : { error: p };
    }
    case 'TEXT': {
      const p = checkStringFields(value, ['text']);
      return p === null ? { row: { text: value.text as string } } : { error: p };
    }
    case 'CHAT': {
      if (!Object.hasOwn(value, 'messages')) return { error: 'missing field "messages"' };
      for (const k of Object.keys(value)) {
        if (k !== 'messages') return { error: `unexpected field "${k}" (expected only "messages")` };
      }
      const msgs = value.messages;
      if (!Array.isArray(msgs)) return { error: `field "messages" must be an array (got ${typeName(msgs)})` };
      if (msgs.length === 0) return { error: 'field "messages" must not be empty' };
      const messages: ChatMessage[] = [];
      for (let i = 0; i < msgs.length; i++) {
        const m: unknown = msgs[i];
        if (!isRecord(m)) return { error: `messages[${i}] must be an object (got ${typeName(m)})` };
        const p = checkStringFields(m, ['role', 'content'], `messages[${i}]: `);
        if (p !== null) return { error: p };
        if (!ROLES.has(m.role as string)) {
          return {
            error: `messages[${i}]: unknown role ${JSON.stringify(m.role)} (expected system, user or assistant)`,
          };
        }
        messages.push({ role: m.role as ChatRole, content: m.content as string });
      }
      if (!messages.some((m) => m.role === 'assistant'))
        return { error: 'a chat row needs at least one assistant message' };
      return { row: { messages } };
    }
  }
}

function isBlank(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}

/** What the async validator does with valid rows besides returning them. */
export interface DatasetRowSink {
  /** Called for every valid row, in order (also when a later line turns out invalid). */
  onRow?: (row: DatasetRow) => void;
  /** Keep the rows for the result (default true); false when `onRow` is all the caller needs. */
  keepRows?: boolean;
}

/** Bytes of input between the validator's pause points (a few hundred microseconds of work). */
const STEP_BYTES = 64 * 1024;

/**
 * Validates a JSONL dataset. Blank lines are skipped (they keep their number for later errors); a UTF-8 BOM
 * and CRLF line ends are accepted. Rows are returned only when `ok`. Synchronous: for a request handler, use
 * `validateDatasetAsync`, which does the same work in slices that yield to the event loop.
 */
export function validateDataset(
  content: Uint8Array | string,
  format: DatasetFormat,
  limits: DatasetLimits = {},
): DatasetValidation {
  const steps = validationSteps(content, format, limits, {});
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * `validateDataset` that never holds the event loop longer than one slice (`slice`, default 8 ms): linear
 * work, paused every 64 KiB of input when the slice is used up. A single line is at most `maxLineBytes`
 * (4 MiB), so no step is long. `sink.onRow` sees each valid row as it is parsed (e.g. to count tokens).
 */
export async function validateDatasetAsync(
  content: Uint8Array | string,
  format: DatasetFormat,
  limits: DatasetLimits = {},
  sink: DatasetRowSink & { slice?: TimeSlice } = {},
): Promise<DatasetValidation> {
  const slice = sink.slice ?? new TimeSlice();
  const steps = validationSteps(content, format, limits, sink);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await slice.maybePause();
  }
}

/** The validator as a generator: it yields between lines, every STEP_BYTES of input; returns the result. */
function* validationSteps(
  content: Uint8Array | string,
  format: DatasetFormat,
  limits: DatasetLimits,
  sink: DatasetRowSink,
): Generator<void, DatasetValidation, void> {
  const { maxBytes, maxLineBytes, maxErrors } = { ...DEFAULT_DATASET_LIMITS, ...limits };
  const keepRows = sink.keepRows ?? true;
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const sizeBytes = bytes.byteLength;
  const errors: DatasetError[] = [];
  let omitted = 0;
  const report = (line: number, message: string): void => {
    if (errors.length < maxErrors) errors.push({ line, message });
    else omitted++;
  };
  const done = (rows: DatasetRow[], rowCount: number): DatasetValidation => {
    if (omitted > 0) errors.push({ line: 0, message: `… ${omitted} more error${omitted === 1 ? '' : 's'}` });
    const ok = errors.length === 0;
    return { ok, rows: ok ? rows : [], rowCount, sizeBytes, errors };
  };

  if (!DATASET_FORMATS.includes(format)) {
    report(0, `unknown dataset format ${JSON.stringify(format)}`);
    return done([], 0);
  }
  if (sizeBytes > maxBytes) {
    report(0, `dataset is ${sizeBytes} bytes, over the limit of ${maxBytes}`);
    return done([], 0);
  }

  const rows: DatasetRow[] = [];
  let rowCount = 0;
  let start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  let stepEnd = start + STEP_BYTES;
  for (let line = 1; start < sizeBytes; line++) {
    if (start >= stepEnd) {
      yield;
      stepEnd = start + STEP_BYTES;
    }
    let end = bytes.indexOf(NEWLINE, start);
    if (end === -1) end = sizeBytes;
    const next = end + 1;
    if (end - start > maxLineBytes) {
      report(line, `line is ${end - start} bytes, over the limit of ${maxLineBytes}`);
      start = next;
      continue;
    }
    if (isBlank(bytes, start, end)) {
      start = next;
      continue;
    }
    let text: string;
    try {
      text = utf8.decode(bytes.subarray(start, end));
    } catch {
      report(line, 'invalid UTF-8');
      start = next;
      continue;
    }
    start = next;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      report(line, `invalid JSON: ${(e as Error).message.slice(0, 200)}`);
      continue;
    }
    const checked = checkRow(value, format);
    if ('error' in checked) {
      report(line, checked.error);
      continue;
    }
    rowCount++;
    sink.onRow?.(checked.row);
    if (errors.length === 0 && keepRows) rows.push(checked.row);
  }
  if (rowCount === 0 && errors.length === 0) report(0, 'dataset has no rows');
  return done(rows, rowCount);
}
