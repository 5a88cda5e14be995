/**
 * Helpers for the HTTP layer's tests: `listen(handler)` serves a request handler on 127.0.0.1 and a free port,
 * and `rawRequest` talks HTTP/1.1 over a bare socket, so a test can send headers without a body and see
 * what the server answers before it has read anything.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

export interface Listening {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
): Promise<Listening> {
  const server = createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface RawAnswer {
  /** Everything the server sent before it closed the connection or `timeoutMs` passed. */
  text: string;
  status: number | null;
  /** Whether the server closed the connection (false: the timeout ended the wait). */
  closed: boolean;
}

/**
 * Sends `head` (request line + headers, no trailing blank line) and then `body` if given, and collects the
 * answer until the server closes the connection or `timeoutMs` passes.
 */
export function rawRequest(port: number, head: string, body = '', timeoutMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset after the answer arrived still counts as the server closing.
      if (err.code === 'ECONNRESET' && text) return finish(true);
      clearTimeout(timer);
      reject(err);
    });
    socket.write(`${head}\r\n\r\n${body}`);
  });
}
