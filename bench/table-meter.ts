// The delivery ledger's cost, counted where it is paid: a pass-through proxy in front of Azurite's
// table endpoint that the app's host is pointed at, counting each table request and timing it to
// the end of Azurite's answer. Loopback only.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TableCounts {
  /** Every request: reads (GET) and writes (POST insert or batch, PUT, MERGE/PATCH, DELETE). */
  requests: number;
  writes: number;
  reads: number;
  /** Sum of the requests' durations, proxy to Azurite and back. */
  totalMs: number;
}

export interface TableMeter {
  /** `AzureWebJobsStorage` with its TableEndpoint through the meter. */
  connectionString: string;
  counts(): TableCounts;
  stop(): Promise<void>;
}

export async function startTableMeter(connectionString: string): Promise<TableMeter> {
  const endpoint = /(?:^|;)TableEndpoint=([^;]+)/.exec(connectionString)?.[1];
  if (!endpoint) throw new Error('the storage connection string names no TableEndpoint');
  const target = new URL(endpoint);
  const counts: TableCounts = { requests: 0, writes: 0, reads: 0, totalMs: 0 };
  const server: Server = createServer((req, res) => {
    const started = performance.now();
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', () => {
          counts.requests++;
          if (req.method === 'GET') counts.reads++;
          else counts.writes++;
          counts.totalMs += performance.now() - started;
        });
      },
    );
    upstream.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const metered = new URL(endpoint);
  metered.port = String(port);
  return {
    connectionString: connectionString.replace(endpoint, metered.toString().replace(/\/$/, '')),
    counts: () => ({ ...counts }),
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What happened between two snapshots, per notification. */
export function tableCostPer(
  before: TableCounts,
  after: TableCounts,
  notifications: number,
): { tableOpsPer: number; tableWritesPer: number; tableMsPer: number } {
  const per = (n: number) => Math.round((n / notifications) * 1000) / 1000;
  return {
    tableOpsPer: per(after.requests - before.requests),
    tableWritesPer: per(after.writes - before.writes),
    tableMsPer: per(after.totalMs - before.totalMs),
  };
}
