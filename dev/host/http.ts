import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BindingMetadata, RegisteredFunction, RpcHttpData, WorkerRegistry } from './core';
import { invoke, type HostLog } from './invoke';

// Azure Functions caps request bodies at 100 MB (`maxRequestBodySize`); the app sets its own,
// far lower limits on top.
const MAX_BODY = 100 * 1024 * 1024;

interface Route {
  fn: RegisteredFunction;
  triggerName: string;
  methods: string[] | undefined;
  segments: Segment[];
  template: string;
}

type Segment =
  { kind: 'literal'; value: string } | { kind: 'param'; name: string; optional: boolean; catchAll: boolean };

/** Parses an ASP.NET-style route template (`me/registration`, `items/{id}`, `files/{*path}`, `{id:int?}`). */
export function parseRoute(template: string): Segment[] {
  return template
    .split('/')
    .filter((s) => s.length > 0)
    .map((segment): Segment => {
      const match = /^\{(\*)?([A-Za-z0-9_]+)(?::[^}?]*)?(\?)?\}$/.exec(segment);
      if (!match) return { kind: 'literal', value: segment.toLowerCase() };
      return { kind: 'param', name: match[2]!, optional: Boolean(match[3]), catchAll: Boolean(match[1]) };
    });
}

export function matchRoute(segments: Segment[], pathParts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = pathParts[i];
    if (seg.kind === 'literal') {
      if (part === undefined || part.toLowerCase() !== seg.value) return undefined;
    } else if (seg.catchAll) {
      params[seg.name] = pathParts.slice(i).join('/');
      return params;
    } else if (part === undefined) {
      if (!seg.optional) return undefined;
    } else {
      params[seg.name] = decodeURIComponent(part);
    }
  }
  return pathParts.length <= segments.length ? params : undefined;
}

function routesOf(registry: WorkerRegistry): Route[] {
  return registry.functions
    .map((fn) => ({ fn, trigger: registry.triggerOf(fn) }))
    .filter(({ trigger }) => trigger[1].type.toLowerCase() === 'httptrigger')
    .map(({ fn, trigger: [triggerName, binding] }) => {
      const template = typeof binding.route === 'string' ? binding.route : fn.metadata.name;
      return { fn, triggerName, methods: methodsOf(binding), segments: parseRoute(template), template };
    });
}

function methodsOf(binding: BindingMetadata): string[] | undefined {
  return Array.isArray(binding.methods) ? binding.methods.map((m) => String(m).toUpperCase()) : undefined;
}

async function readAll(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** W3C trace context for the invocation: the caller's when it sent one, else a new one. */
function traceParentFor(req: IncomingMessage): string {
  const incoming = req.headers.traceparent;
  if (typeof incoming === 'string' && /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(incoming))
    return incoming;
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

export interface HttpHostOptions {
  registry: WorkerRegistry;
  routePrefix: string;
  port: number;
  host?: string;
  log: HostLog;
}

export interface RunningHttpHost {
  port: number;
  routes: { name: string; methods: string[]; path: string }[];
  close(): Promise<void>;
}

/** Serves each registered HTTP trigger at `/{routePrefix}/{route}`, invoking it as the worker would. */
export async function startHttpHost(options: HttpHostOptions): Promise<RunningHttpHost> {
  const routes = routesOf(options.registry);
  const prefix = options.routePrefix.replace(/^\/+|\/+$/g, '');

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.log('error', `Host error: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    const parts = url.pathname.split('/').filter((p) => p.length > 0);
    const prefixParts = prefix ? prefix.split('/') : [];
    const underPrefix = prefixParts.every((p, i) => parts[i]?.toLowerCase() === p.toLowerCase());
    const method = (req.method ?? 'GET').toUpperCase();
    const candidates = underPrefix
      ? routes
          .map((route) => ({ route, params: matchRoute(route.segments, parts.slice(prefixParts.length)) }))
          .filter((c): c is { route: Route; params: Record<string, string> } => c.params !== undefined)
      : [];
    const hit = candidates.find((c) => !c.route.methods || c.route.methods.includes(method));
    if (!hit) {
      // As the Functions host: 404 for an unknown route, 405 for a known route and another method.
      res.writeHead(candidates.length > 0 ? 405 : 404).end();
      return;
    }
    const body = await readAll(req);
    if (!body) {
      res.writeHead(413).end();
      return;
    }
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(', ') : value;
    }
    const http: RpcHttpData = {
      method,
      url: url.toString(),
      headers,
      query: Object.fromEntries(url.searchParams),
      params: hit.params,
      ...(body.length > 0 ? { body: { bytes: body } } : {}),
    };
    const result = await invoke(options.registry, hit.route.fn, {
      invocationId: randomUUID(),
      input: { name: hit.route.triggerName, data: { http } },
      triggerMetadata: {},
      traceParent: traceParentFor(req),
      log: options.log,
    });
    const out = result.ok ? result.returnValue?.http : undefined;
    if (!out) {
      // The host answers a failed invocation with a bare 500.
      res.writeHead(500).end();
      return;
    }
    const responseHeaders: Record<string, string> = { ...(out.headers ?? {}) };
    const bytes = out.body?.bytes ? Buffer.from(out.body.bytes) : Buffer.from(out.body?.string ?? '');
    responseHeaders['content-length'] = String(bytes.length);
    res.writeHead(Number(out.statusCode ?? '200'), responseHeaders);
    res.end(bytes);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    routes: routes.map((r) => ({
      name: r.fn.metadata.name,
      methods: r.methods ?? ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      path: `/${prefix ? prefix + '/' : ''}${r.template}`,
    })),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
