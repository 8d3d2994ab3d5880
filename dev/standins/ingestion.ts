import { gunzipSync } from 'node:zlib';
import type { LocalTls } from '../tls';
import { readBody, sendJson, startHttps } from './https';

// Application Insights' ingestion endpoint ("Breeze") on loopback: what the connection string's
// IngestionEndpoint names. It accepts what the real SDK posts to /v2.1/track and keeps every
// envelope, so tests assert on what would have arrived in Azure.

/** The local resource's instrumentation key: no Application Insights resource has it. */
export const LOCAL_INSTRUMENTATION_KEY = '00000000-0000-4000-8000-00000000a1a1';

/** One telemetry item as Breeze receives it (only the parts tests read are typed). */
export interface Envelope {
  name: string;
  time: string;
  iKey?: string;
  tags?: Record<string, string>;
  data?: {
    baseType?: string;
    baseData?: {
      name?: string;
      id?: string;
      duration?: string;
      success?: boolean;
      resultCode?: string;
      responseCode?: string;
      target?: string;
      type?: string;
      data?: string;
      url?: string;
      properties?: Record<string, string>;
      measurements?: Record<string, number>;
      metrics?: { name: string; value: number; count?: number; min?: number; max?: number }[];
    };
  };
}

export interface IngestionStandIn {
  url: string;
  /** A connection string naming this endpoint (Live Metrics left pointing at it too). */
  connectionString: string;
  /** Every envelope received, in order. */
  readonly envelopes: Envelope[];
  /** Requests to anything but `POST /v2.1/track` (Live Metrics, a wrong path), as `METHOD path`. */
  readonly unexpected: string[];
  /** Envelopes of a `baseType` (`EventData`, `RequestData`, `RemoteDependencyData`, `MetricData`, ...). */
  ofType(baseType: string): Envelope[];
  /** Custom events by name. */
  events(name: string): Envelope[];
  clear(): void;
  close(): Promise<void>;
}

/** Starts the stand-in on loopback (`port` 0 picks a free one). */
export async function startIngestionStandIn(options: {
  tls: LocalTls;
  port: number;
}): Promise<IngestionStandIn> {
  const envelopes: Envelope[] = [];
  const unexpected: string[] = [];
  const server = await startHttps(options.tls, options.port, async (req, res) => {
    const path = new URL(req.url ?? '/', 'https://ingestion.local').pathname;
    if (req.method !== 'POST' || !/^\/v2(\.1)?\/track$/.test(path)) {
      unexpected.push(`${req.method ?? '?'} ${path}`);
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    let raw = await readBody(req, 16 * 1024 * 1024);
    // The SDK gzips only for Azure's host names; a proxy might do it for any.
    if (/gzip/i.test(String(req.headers['content-encoding'] ?? '')) || (raw[0] === 0x1f && raw[1] === 0x8b)) {
      raw = gunzipSync(raw);
    }
    const text = raw.toString('utf8').trim();
    // Breeze takes a JSON array, or newline-delimited envelopes.
    const items: unknown[] = text.startsWith('[')
      ? (JSON.parse(text) as unknown[])
      : text
          .split('\n')
          .filter((line) => line.trim() !== '')
          .map((line) => JSON.parse(line) as unknown);
    for (const item of items) envelopes.push(item as Envelope);
    sendJson(res, 200, { itemsReceived: items.length, itemsAccepted: items.length, errors: [] });
  });
  const url = server.url;
  return {
    url,
    connectionString: `InstrumentationKey=${LOCAL_INSTRUMENTATION_KEY};IngestionEndpoint=${url}/;LiveEndpoint=${url}/`,
    envelopes,
    unexpected,
    ofType: (baseType) => envelopes.filter((e) => e.data?.baseType === baseType),
    events: (name) =>
      envelopes.filter((e) => e.data?.baseType === 'EventData' && e.data.baseData?.name === name),
    clear: () => {
      envelopes.length = 0;
      unexpected.length = 0;
    },
    close: () => server.close(),
  };
}
