/**
 * A TCP proxy between the browser and the API that can cut every open connection at once — a network blip:
 * the console's WebSocket drops mid-subscription and has to reconnect (the proxy keeps listening).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface BlipProxy {
  url: string;
  /** Destroys every connection through the proxy; new ones are accepted as before. */
  cutAll(): number;
  close(): Promise<void>;
}

export async function startBlipProxy(targetPort: number): Promise<BlipProxy> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cutAll() {
      const n = open.size;
      for (const s of [...open]) s.destroy();
      open.clear();
      return n;
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
