import type { CoreInvocationContext, RegisteredFunction, RpcTypedData, WorkerRegistry } from './core';

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
  try {
    const invocation = model.getInvocationModel(core);
    const { context, inputs } = await invocation.getArguments();
    const result = await invocation.invokeFunction(context, inputs, fn.callback);
    const response = await invocation.getResponse(context, result);
    const durationMs = Math.round(performance.now() - started);
    input.log(
      'information',
      `Executed 'Functions.${name}' (Succeeded, Id=${input.invocationId}, Duration=${durationMs}ms)`,
    );
    return { ok: true, returnValue: response.returnValue, durationMs };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    const durationMs = Math.round(performance.now() - started);
    input.log(
      'error',
      `Executed 'Functions.${name}' (Failed, Id=${input.invocationId}, Duration=${durationMs}ms): ${error.message}`,
    );
    return { ok: false, error, durationMs };
  }
}
