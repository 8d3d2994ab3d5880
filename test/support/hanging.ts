import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { LocalTls } from '../../dev/tls';

/** A dependency that accepts connections and requests and never answers any of them. */
export interface HangingServer {
  /** `https://127.0.0.1:<port>` (or `http://` without TLS). */
  url: string;
  port: number;
  /** Every request that arrived, in order (method and path): the tries the app made. */
  requests: { method: string; path: string }[];
  close(): Promise<void>;
}

/**
 * Starts a server on loopback that reads each request and never sends a byte back: the worst
 * failure a dependency has (no refused connection, no error status, nothing to retry on).
 * With `tls` it speaks HTTPS with the local CA's certificate, so the TLS handshake succeeds.
 */
export async function startHangingServer(options: { tls?: LocalTls } = {}): Promise<HangingServer> {
  const requests: { method: string; path: string }[] = [];
  const record = (req: IncomingMessage): void => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    req.resume();
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, record)
    : createHttpServer(record);
  // Node's own 5-minute request timeout would answer 408 eventually; a hanging dependency never does.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
