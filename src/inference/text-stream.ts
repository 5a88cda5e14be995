/**
 * Turns generated token ids into text deltas for streaming: never splits a UTF-8 character (a decoded tail
 * ending in U+FFFD is a partial byte sequence and is held back) and never emits text that could be the start
 * of a stop sequence; on a stop sequence the text is cut before it. Decoding is incremental (TGI's
 * prefix/read offsets), so a long generation costs O(window) per token. The tokenizer lives in src/engine.
 */
import { BadInputError } from '../shared/errors.js';

export interface StreamStep {
  delta: string;
  stopped: boolean;
}

export class TextStream {
  /** everything emitted so far (after `finish`, the whole text, cut before a stop sequence) */
  text = '';
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  /** decoded but not yet emitted (a possible stop-sequence prefix) */
  private pending = '';
  private stopped = false;
  private readonly maxStop: number;

  constructor(
    private readonly decode: (ids: number[]) => string,
    private readonly stop: string[] = [],
  ) {
    if (stop.some((s) => s.length === 0)) throw new BadInputError('stop sequences must not be empty');
    this.maxStop = Math.max(0, ...stop.map((s) => s.length));
  }

  push(tokenId: number): StreamStep {
    if (this.stopped) return { delta: '', stopped: true };
    this.ids.push(tokenId);
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode(this.ids.slice(this.prefixOffset));
    // A trailing U+FFFD means the last token(s) end inside a multi-byte character: wait for more bytes.
    if (full.length > prefix.length && !full.endsWith('\uFFFD')) {
      this.pending += full.slice(prefix.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
    }
    return this.release(false);
  }

  /** Flush what is held back (a partial character is emitted as U+FFFD); returns the remaining text. */
  finish(): string {
    if (this.stopped) return '';
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.decode(this.ids.slice(this.prefixOffset));
    if (full.length > prefix.length) this.pending += full.slice(prefix.length);
    this.prefixOffset = this.readOffset = this.ids.length;
    return this.release(true).delta;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private release(final: boolean): StreamStep {
    let cut = -1;
    for (const s of this.stop) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      const delta = this.pending.slice(0, cut);
      this.text += delta;
      this.pending = '';
      this.stopped = true;
      return { delta, stopped: true };
    }
    const hold = final ? 0 : this.heldBack();
    const delta = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    this.text += delta;
    return { delta, stopped: false };
  }

  /** Length of the longest suffix of `pending` that is a proper prefix of some stop sequence. */
  private heldBack(): number {
    for (let n = Math.min(this.pending.length, this.maxStop - 1); n > 0; n--) {
      const tail = this.pending.slice(this.pending.length - n);
      if (this.stop.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
