/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk and `data: [DONE]\n\n` at the end,
 * `text/event-stream` with no caching or proxy buffering. Writes after the client left are dropped.
 */
import type { ServerResponse } from 'node:http';

export class SseWriter {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx and friends: do not hold chunks back.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
  }

  get open(): boolean {
    return !this.res.writableEnded && !this.res.destroyed;
  }

  send(data: unknown): void {
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** `data: [DONE]`, then the end of the response. */
  done(): void {
    if (!this.open) return;
    this.res.write('data: [DONE]\n\n');
    this.res.end();
  }

  /** Ends without [DONE] (after an error event). */
  end(): void {
    if (this.open) this.res.end();
  }
}
