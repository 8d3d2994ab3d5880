// The local host's own request telemetry. In Azure the Functions host (not the worker, not the
// app's SDK) records each invocation as a request whose id is the span id of the traceparent it
// hands the worker; the app's dependencies and events join that operation through it. The local
// host does the same with its own small sender, so the app sees no difference.

export interface InvocationRecord {
  functionName: string;
  invocationId: string;
  traceParent: string;
  start: Date;
  durationMs: number;
  succeeded: boolean;
  /** HTTP status for an HTTP trigger; the host records `0` for other triggers. */
  resultCode: number;
  url?: string;
  trigger: string;
}

export interface HostTelemetry {
  record(invocation: InvocationRecord): void;
  flush(): Promise<void>;
}

const SEND_AFTER_MS = 500;

/** A .NET TimeSpan (`d.hh:mm:ss.fff`), as Breeze expects durations. */
function timeSpan(ms: number): string {
  const total = Math.max(0, Math.round(ms));
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const days = Math.floor(total / 86_400_000);
  const h = Math.floor(total / 3_600_000) % 24;
  const m = Math.floor(total / 60_000) % 60;
  const s = Math.floor(total / 1000) % 60;
  return `${days}.${pad(h)}:${pad(m)}:${pad(s)}.${pad(total % 1000, 3)}`;
}

/**
 * The host's request recorder for `APPLICATIONINSIGHTS_CONNECTION_STRING`, or none when it is
 * unset. Sends batches to `{IngestionEndpoint}/v2.1/track` with `fetch`, outside any invocation.
 */
export function hostTelemetryFrom(env: NodeJS.ProcessEnv): HostTelemetry | undefined {
  const connection = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  if (!connection) return undefined;
  const parts = Object.fromEntries(
    connection
      .split(';')
      .map((p) => p.split('='))
      .filter((kv) => kv.length >= 2)
      .map(([k, ...v]) => [k!.trim().toLowerCase(), v.join('=').trim()]),
  );
  const iKey = parts.instrumentationkey;
  const endpoint = (parts.ingestionendpoint || 'https://dc.services.visualstudio.com').replace(/\/+$/, '');
  if (!iKey) return undefined;
  const role = env.WEBSITE_SITE_NAME || 'graph-notify (local host)';
  let pending: unknown[] = [];
  let timer: NodeJS.Timeout | undefined;
  let sending: Promise<void> = Promise.resolve();

  const send = (): Promise<void> => {
    timer = undefined;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return sending;
    sending = sending
      .then(() =>
        fetch(`${endpoint}/v2.1/track`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(batch),
          signal: AbortSignal.timeout(10_000),
        }),
      )
      .then((res) => void res.body?.cancel())
      .catch((err: unknown) =>
        console.warn(`Host telemetry: sending ${batch.length} request(s) failed: ${(err as Error).message}`),
      );
    return sending;
  };

  return {
    record(invocation) {
      const [, traceId, spanId] = invocation.traceParent.split('-');
      pending.push({
        name: 'Microsoft.ApplicationInsights.Request',
        time: invocation.start.toISOString(),
        iKey,
        tags: {
          'ai.operation.id': traceId,
          'ai.operation.name': invocation.functionName,
          'ai.cloud.role': role,
          'ai.internal.sdkVersion': 'graph-notify-local-host',
        },
        data: {
          baseType: 'RequestData',
          baseData: {
            ver: 2,
            id: spanId,
            name: invocation.functionName,
            duration: timeSpan(invocation.durationMs),
            success: invocation.succeeded,
            responseCode: String(invocation.resultCode),
            ...(invocation.url ? { url: invocation.url } : {}),
            properties: {
              InvocationId: invocation.invocationId,
              OperationName: invocation.functionName,
              FullName: `Functions.${invocation.functionName}`,
              TriggerReason: invocation.trigger,
            },
          },
        },
      });
      // A timer started here, outside the function's bound trace context: not an app dependency.
      timer ??= setTimeout(() => void send(), SEND_AFTER_MS);
    },
    flush() {
      if (timer) clearTimeout(timer);
      return send();
    },
  };
}
