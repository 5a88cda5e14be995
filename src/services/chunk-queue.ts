/**
 * A push-to-pull bridge for streamed results: the producer pushes items and ends (or fails) once; the consumer
 * iterates. Closing the iterator early calls `onClose` (the generation service aborts the request there, so a
 * client that left takes its row out of the running batch). Used by generation.ts's generateStream.
 */
export class ChunkQueue<T> {
  private readonly buffer: T[] = [];
  private wake: (() => void) | undefined;
  private failure: { err: unknown } | null = null;
  private done = false;
  private closed = false;

  constructor(private readonly onClose: () => void) {}

  push(item: T): void {
    this.buffer.push(item);
    this.wake?.();
  }

  end(last?: T): void {
    if (last !== undefined) this.buffer.push(last);
    this.done = true;
    this.wake?.();
  }

  fail(err: unknown): void {
    this.failure = { err };
    this.done = true;
    this.wake?.();
  }

  iterator(): AsyncIterableIterator<T> {
    const it: AsyncIterableIterator<T> = {
      next: async () => {
        while (!this.closed && this.buffer.length === 0 && !this.done) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          this.wake = undefined;
        }
        if (this.closed) return { value: undefined, done: true };
        if (this.buffer.length > 0) return { value: this.buffer.shift()!, done: false };
        if (this.failure) {
          this.closed = true;
          throw this.failure.err;
        }
        return { value: undefined, done: true };
      },
      return: async () => {
        if (!this.closed && !this.done) this.onClose();
        this.closed = true;
        this.wake?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }
}
