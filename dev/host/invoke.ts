import type { CoreInvocationContext, RegisteredFunction, RpcTypedData, WorkerRegistry } from './core';
import type { HostTelemetry } from './telemetry';

export type HostLog = (level: string, message: string) => void;

export interface InvocationInput {
  invocationId: string;
  input: { name: string; data: RpcTypedData };
  triggerMetadata: Record<string, RpcTypedData>;
  traceParent: string;
  log: HostLog;
}

export type InvocationResult =
  | { ok: true; returnValue: RpcTypedData | undefined; durationMs: number }
  | { ok: false; error: Error; durationMs: number };

let hostTelemetry: HostTelemetry | undefined;

/** Where the host records each invocation as a request (as the Functions host does in Azure). */
export function recordInvocationsTo(telemetry: HostTelemetry | undefined): void {
  hostTelemetry = telemetry;
}

/**
 * Runs one invocation through the app's programming model exactly as the worker does:
 * `getInvocationModel` → `getArguments` → `invokeFunction` → `getResponse`. So the function sees
 * `@azure/functions`' own `HttpRequest` / `InvocationContext`, built by the library itself.
 */
export async function invoke(
  registry: WorkerRegistry,
  fn: RegisteredFunction,
  input: InvocationInput,
): Promise<InvocationResult> {
  const model = registry.programmingModel;
  if (!model) throw new Error('The app registered no programming model (is @azure/functions loaded?).');
  const name = fn.metadata.name;
  const started = performance.now();
  const startedAt = new Date();
  const trigger = registry.triggerOf(fn)[1].type;
  input.log('information', `Executing 'Functions.${name}' (Id=${input.invocationId})`);
  const core: CoreInvocationContext = {
    invocationId: input.invocationId,
    metadata: fn.metadata,
    request: {
      invocationId: input.invocationId,
      functionId: name,
      inputData: [input.input],
      triggerMetadata: input.triggerMetadata,
      traceContext: { traceParent: input.traceParent, traceState: '', attributes: {} },
    },
    log: (level, category, message) => input.log(level, `[${name}] ${message}`),
  };
  const record = (ok: boolean, durationMs: number, returnValue?: RpcTypedData): void => {
    const http = returnValue?.http;
    const status = http ? Number(http.statusCode ?? '200') : 0;
    const url = input.input.data.http?.url;
    hostTelemetry?.record({
      functionName: name,
      invocationId: input.invocationId,
      traceParent: input.traceParent,
      start: startedAt,
      durationMs,
      // The host marks an HTTP invocation failed by its status too.
      succeeded: ok && status < 400,
      resultCode: http ? status : ok ? 0 : 500,
      ...(url ? { url } : {}),
      trigger,
    });
  };
  try {
    const invocation = model.getInvocationModel(core);
    const { context, inputs } = await invocation.getArguments();
    // The worker's order: preInvocation hooks may replace the handler and its inputs (this is how
    // an app binds the invocation's trace context), then the function, then postInvocation hooks.
    const pre = {
      hookData: {},
      appHookData: {},
      invocationContext: context,
      functionCallback: fn.callback,
      inputs,
    };
    await registry.runHooks('preInvocation', pre);
    let result: unknown;
    let failure: unknown;
    try {
      result = await invocation.invokeFunction(context, pre.inputs, pre.functionCallback);
    } catch (err) {
      failure = err;
    }
    const post = {
      hookData: pre.hookData,
      appHookData: {},
      invocationContext: context,
      inputs: pre.inputs,
      result,
      error: failure,
    };
    await registry.runHooks('postInvocation', post);
    // A postInvocation hook may replace or clear the function's error, as in the worker.
    if (post.error !== undefined)
      throw post.error instanceof Error ? post.error : new Error(JSON.stringify(post.error) ?? 'undefined');
    const response = await invocation.getResponse(context, post.result);
    const durationMs = Math.round(performance.now() - started);
    input.log(
      'information',
      `Executed 'Functions.${name}' (Succeeded, Id=${input.invocationId}, Duration=${durationMs}ms)`,
    );
    record(true, durationMs, response.returnValue);
    return { ok: true, returnValue: response.returnValue, durationMs };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    const durationMs = Math.round(performance.now() - started);
    input.log(
      'error',
      `Executed 'Functions.${name}' (Failed, Id=${input.invocationId}, Duration=${durationMs}ms): ${error.message}`,
    );
    record(false, durationMs);
    return { ok: false, error, durationMs };
  }
}
