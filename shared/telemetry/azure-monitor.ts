// The Application Insights adapter of the telemetry port. Loaded only by `startTelemetry` when
// APPLICATIONINSIGHTS_CONNECTION_STRING is set: nothing imports this file statically.
import path from 'node:path';
import type { ClientRequest, RequestOptions } from 'node:http';
import { app } from '@azure/functions';
import {
  context as otelContext,
  metrics,
  propagation,
  ROOT_CONTEXT,
  trace,
  type Attributes,
} from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import type { InstrumentationOptions } from 'applicationinsights';
import type {
  MetricDimensions,
  Telemetry,
  TelemetryEventName,
  TelemetryMetricName,
  TelemetryProperties,
  TelemetrySettings,
  TelemetryTargets,
} from '../telemetry';
import { withDeferredRequires } from './deferred-require';

/** The attribute the Azure Monitor exporter turns into a custom event (`customEvents`). */
const CUSTOM_EVENT_NAME = 'microsoft.custom_event.name';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Modules the SDK requires at its top but the app never uses, loaded only if something uses them.
 * Instrumentations: the app talks to no database and logs through the Functions host. Exporters
 * and propagators: OpenTelemetry's NodeSDK offers OTLP, Zipkin and Prometheus and B3 and Jaeger to
 * `OTEL_*` variables; the app exports to Azure Monitor with W3C trace context only. Kept: HTTP,
 * the Azure SDK's instrumentation (off, see below), the Azure Monitor exporter, the SDK providers.
 */
const UNUSED_BY_THE_APP: ReadonlySet<string> = new Set([
  '@opentelemetry/instrumentation-mongodb',
  '@opentelemetry/instrumentation-mysql',
  '@opentelemetry/instrumentation-pg',
  '@opentelemetry/instrumentation-redis',
  '@opentelemetry/instrumentation-bunyan',
  '@opentelemetry/instrumentation-winston',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/exporter-trace-otlp-grpc',
  '@opentelemetry/exporter-trace-otlp-proto',
  '@opentelemetry/exporter-logs-otlp-http',
  '@opentelemetry/exporter-logs-otlp-grpc',
  '@opentelemetry/exporter-logs-otlp-proto',
  '@opentelemetry/exporter-metrics-otlp-http',
  '@opentelemetry/exporter-metrics-otlp-grpc',
  '@opentelemetry/exporter-metrics-otlp-proto',
  '@opentelemetry/exporter-zipkin',
  '@opentelemetry/exporter-prometheus',
  '@opentelemetry/propagator-b3',
  '@opentelemetry/propagator-jaeger',
  // What the OTLP exporters share; NodeSDK reads a constant off it when it builds one.
  '@opentelemetry/otlp-exporter-base',
  // NodeSDK's declarative configuration (a YAML file named by a variable), used by `startNodeSDK`.
  '@opentelemetry/configuration',
  // The browser SDK loader's snippet, for web apps that serve HTML.
  '@microsoft/applicationinsights-web-snippet',
]);

let started: Telemetry | undefined;

/**
 * Starts the Azure Monitor SDK (once per process) and returns the port over it. Side effects: the
 * SDK's global tracer, meter and logger providers; `http`/`https` and `fetch` instrumentation of
 * outgoing calls made inside an invocation; a preInvocation hook that runs every handler inside
 * the trace context the Functions host gave the invocation; an appTerminate hook that flushes.
 */
export function startAzureMonitor(settings: TelemetrySettings, targets: TelemetryTargets): Telemetry {
  if (started) return started;
  const { flushAzureMonitor, shutdownAzureMonitor, useAzureMonitor } = withDeferredRequires(
    UNUSED_BY_THE_APP,
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    () => require('applicationinsights') as typeof import('applicationinsights'),
  );
  keepVmDetectorOut();
  const targetOf = targetNamer(targets);
  const local = LOOPBACK.has(new URL(settings.ingestionEndpoint).hostname);

  useAzureMonitor({
    azureMonitorExporterOptions: {
      connectionString: settings.connectionString,
      // Failed exports are kept on disk and replayed at the next start: against a local stand-in
      // that replays one run's telemetry into the next.
      ...(local ? { disableOfflineStorage: true } : {}),
    },
    samplingRatio: settings.samplingRatio,
    // The default is a limit of 5 traces/s, which drops a cold start's burst of dependencies.
    tracesPerSecond: 0,
    // Events record a notification's fate: never dropped with a sampled-out operation.
    enableTraceBasedSamplingForLogs: false,
    enableLiveMetrics: false,
    // Process counters come from the Functions platform already; the worker need not pay for them.
    enableAutoCollectPerformance: false,
    // The worker reports a function's failure to the host, which records it with the request.
    enableAutoCollectExceptions: false,
    instrumentationOptions: {
      http: {
        enabled: true,
        // In Azure the worker has no HTTP server (the host talks gRPC to it); locally the dev
        // host's server would add a second, unrelated request per call, and an ignored incoming
        // request still runs its handler with tracing suppressed.
        disableIncomingRequestInstrumentation: true,
        // Only calls made for an invocation: not the SDK's own exports, nor a host's polling.
        // (`requireParentforOutgoingSpans` would also drop calls whose parent is the host's
        // remote span, i.e. all of them.) The hook runs synchronously in the caller's context.
        ignoreOutgoingRequestHook: () => trace.getSpan(otelContext.active()) === undefined,
        startOutgoingSpanHook: (request: RequestOptions) => targetOf(originOfRequest(request)),
      } as Record<string, unknown>,
      // Key Vault and Storage calls are recorded by the HTTP instrumentation above, one row per
      // call with its targetService. The Azure SDK's own spans would add an HTTP span of the
      // client's pipeline above each of those (two rows per call) and one per client method.
      azureSdk: { enabled: false },
      // On by default. Off, the SDK never looks into their modules (see UNUSED_BY_THE_APP), and
      // the app uses none of these libraries.
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
      console: { enabled: false },
      bunyan: { enabled: false },
      winston: { enabled: false },
      // The shim's own options (console) on top of the distro's, which its type leaves out.
    } as InstrumentationOptions,
  });
  // Node's own http and https are patched when they are next required (only modules `require()`d after start are patched), and the
  // Key Vault and Storage clients required them before telemetry started; they read `request`
  // off the module at each call, so patching the module in place reaches them.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('node:http');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('node:https');
  // msal-node, jose and the Graph client use fetch, which the SDK does not instrument. An
  // instrumentation enables itself as it is constructed, on the global tracer and meter providers
  // the SDK has just set: what `registerInstrumentations` would do, without loading the app's own
  // copy of @opentelemetry/instrumentation next to the one the SDK and this instrumentation use.
  new UndiciInstrumentation({
    requireParentforSpans: true,
    startSpanHook: (request) => targetOf(request.origin),
  });

  // What @azure/functions-opentelemetry-instrumentation does, without its log forwarding (the
  // host already records the invocation's logs) and its capability that hands request
  // telemetry to the worker: everything the handler records joins the host's operation.
  app.hook.preInvocation((hook) => {
    const trace = hook.invocationContext.traceContext;
    if (!trace?.traceParent) return;
    // The host's trace context alone, whatever context the host happened to run the hook in.
    const parent = propagation.extract(ROOT_CONTEXT, {
      traceparent: trace.traceParent,
      ...(trace.traceState ? { tracestate: trace.traceState } : {}),
    });
    hook.functionHandler = otelContext.bind(parent, hook.functionHandler);
  });
  app.hook.appTerminate(() => shutdownAzureMonitor());

  const logger = logs.getLogger('graph-notify');
  const meter = metrics.getMeter('graph-notify');
  const sendDuration = meter.createHistogram('NotificationSendDuration', { unit: 'ms' });
  const redemptions = meter.createCounter('RefreshTokenRedemptions');

  started = {
    trackEvent(name: TelemetryEventName, properties: TelemetryProperties): void {
      logger.emit({ body: name, attributes: { [CUSTOM_EVENT_NAME]: name, ...defined(properties) } });
    },
    trackMetric(name: TelemetryMetricName, value: number, dimensions: MetricDimensions): void {
      const attributes = defined({ ...dimensions });
      if (name === 'NotificationSendDuration') sendDuration.record(value, attributes);
      else redemptions.add(value, attributes);
    },
    flush: () => flushAzureMonitor(),
  };
  return started;
}

/**
 * The SDK's Azure VM resource detector asks the instance-metadata address (169.254.169.254) at
 * start, and no option or variable turns it off. A function app runs on App
 * Service, where there is no VM metadata to find, and outside Azure that request must not happen
 * at all: the detector the SDK uses (its own copy of the package) answers with nothing.
 */
function keepVmDetectorOut(): void {
  const sdkDir = path.dirname(require.resolve('@azure/monitor-opentelemetry'));
  const detectorsPath: string = require.resolve('@opentelemetry/resource-detector-azure', {
    paths: [sdkDir],
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const detectors = require(detectorsPath) as {
    azureVmDetector: { detect: () => { attributes: Attributes } };
  };
  detectors.azureVmDetector.detect = () => ({ attributes: {} });
}

/** `targetService` (identity, keyVault, graph, storage, ledger) by origin: locally all share one host. */
function targetNamer(targets: TelemetryTargets): (origin: string | undefined) => Attributes {
  const byOrigin = new Map<string, string>();
  for (const [name, url] of Object.entries(targets) as [string, string | undefined][]) {
    if (!url) continue;
    try {
      byOrigin.set(new URL(url).origin, name);
    } catch {
      // A connection string, say (storage): no origin to match.
    }
  }
  return (origin) => {
    const name = origin ? byOrigin.get(origin) : undefined;
    return name ? { targetService: name } : {};
  };
}

function originOfRequest(request: RequestOptions | ClientRequest): string | undefined {
  if (!('hostname' in request) && !('host' in request)) return undefined;
  const options = request as RequestOptions;
  const protocol = options.protocol ?? 'http:';
  const host = options.hostname ?? options.host;
  if (!host) return undefined;
  const port = options.port ? `:${options.port}` : '';
  try {
    return new URL(`${protocol}//${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}${port}`)
      .origin;
  } catch {
    return undefined;
  }
}

function defined(values: object): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string' || typeof value === 'number') out[key] = value;
  }
  return out;
}
