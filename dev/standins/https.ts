import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalTls } from '../tls';

/** Every stand-in binds loopback only and is named by this host everywhere (msal and the Key
 * Vault SDK compare host strings, so `localhost` in one place and `127.0.0.1` in another fails). */
export const LOOPBACK = '127.0.0.1';

export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts an HTTPS server on loopback (`port` 0 picks a free one). Errors thrown by the handler
 * become a 500 so a stand-in bug shows up as a failing request, not a hung one. */
export async function startHttps(tls: LocalTls, port: number, handler: Handler): Promise<RunningServer> {
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'stand_in_error', message: String(err) });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `https://${LOOPBACK}:${actual}`,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** A fault to answer with instead of the real behaviour. */
export interface Fault {
  status: number;
  /** Seconds, sent as `Retry-After` when set. */
  retryAfter?: number;
  /** Overrides the stand-in's own error body for this status. */
  body?: unknown;
}

/** "Make the next N requests fail": a FIFO of faults a stand-in consults per request. */
export class FaultQueue {
  private queue: Fault[] = [];
  private periodic: { every: number; faults: Fault[]; seen: number; used: number } | undefined;

  failNext(count: number, fault: Fault): void {
    for (let i = 0; i < count; i++) this.queue.push(fault);
  }

  /** Every `every`-th request fails (deterministically, for load tests), cycling through `faults`. */
  failEvery(every: number, ...faults: Fault[]): void {
    this.periodic = { every, faults, seen: 0, used: 0 };
  }

  take(): Fault | undefined {
    const queued = this.queue.shift();
    if (queued || !this.periodic) return queued;
    const p = this.periodic;
    p.seen++;
    if (p.seen % p.every !== 0) return undefined;
    return p.faults[p.used++ % p.faults.length];
  }

  clear(): void {
    this.queue = [];
    this.periodic = undefined;
  }

  get pending(): number {
    return this.queue.length;
  }
}

/** Fixed latency added before answering (the benchmark sets it; tests leave it at 0). */
export async function delay(ms: number): Promise<void> {
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
}

/** A request a test is holding at a stand-in: `reached` resolves once it arrives, `release` lets it on. */
export interface Held {
  reached: Promise<void>;
  release(): void;
}

/**
 * "Hold the next request that looks like this until I say so": lets a test interleave operations
 * deterministically (a response arrives exactly between two steps of another request) without
 * sleeping. Each hold catches one request; requests no hold matches pass straight through.
 */
export class Holds<T> {
  private readonly waiting: Array<{ match: (info: T) => boolean; arrived: () => void; gate: Promise<void> }> =
    [];

  hold(match: (info: T) => boolean): Held {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.waiting.push({ match, arrived, gate });
    return { reached, release };
  }

  /** Called by the stand-in for each request: waits while a hold keeps it. */
  async pass(info: T): Promise<void> {
    const index = this.waiting.findIndex((h) => h.match(info));
    if (index < 0) return;
    const [held] = this.waiting.splice(index, 1);
    held!.arrived();
    await held!.gate;
  }

  clear(): void {
    this.waiting.length = 0;
  }
}
