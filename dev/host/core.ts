// What the Azure Functions Node.js worker hands the app as `@azure/functions-core`: the app's
// `app.http(...)` / `app.storageQueue(...)` calls end in `registerFunction`, and the library
// installs its programming model through `setProgrammingModel`. The local host serves this module
// (see load.ts) and then drives the registered functions the way the worker does.

export interface BindingMetadata {
  type: string;
  direction: 'in' | 'out' | 'inout';
  name?: string;
  [key: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  bindings: Record<string, BindingMetadata>;
  retryOptions?: unknown;
}

export type FunctionCallback = (...args: unknown[]) => unknown;

/** The worker's gRPC shapes, as far as the programming model reads them. */
export interface RpcTypedData {
  string?: string;
  json?: string;
  bytes?: Uint8Array;
  http?: RpcHttpData;
}

export interface RpcHttpData {
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  params?: Record<string, string>;
  body?: RpcTypedData;
  statusCode?: string;
}

export interface RpcInvocationRequest {
  invocationId: string;
  functionId: string;
  inputData: { name: string; data: RpcTypedData }[];
  triggerMetadata: Record<string, RpcTypedData>;
  traceContext?: { traceParent?: string; traceState?: string; attributes?: Record<string, string> };
  retryContext?: unknown;
}

export interface CoreInvocationContext {
  invocationId: string;
  request: RpcInvocationRequest;
  metadata: FunctionMetadata;
  state?: string;
  log(level: string, category: string, message: string): void;
}

export interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], handler: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<{ returnValue?: RpcTypedData }>;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreContext: CoreInvocationContext): InvocationModel;
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

export interface RegisteredFunction {
  metadata: FunctionMetadata;
  callback: FunctionCallback;
}

export type HookCallback = (context: unknown) => unknown;

class Disposable {
  constructor(private readonly onDispose: () => void) {}
  dispose(): void {
    this.onDispose();
  }
}

export type LogSink = (level: string, category: string, message: string) => void;

/** One worker's registry. `createCoreApi` returns the object served as `@azure/functions-core`. */
export class WorkerRegistry {
  readonly functions: RegisteredFunction[] = [];
  readonly hooks = new Map<string, HookCallback[]>();
  programmingModel: ProgrammingModel | undefined;

  constructor(private readonly sink: LogSink) {}

  createCoreApi(): Record<string, unknown> {
    return {
      version: '3.12.0-local',
      Disposable,
      setProgrammingModel: (model: ProgrammingModel) => {
        this.programmingModel = model;
      },
      getProgrammingModel: () => this.programmingModel,
      registerFunction: (metadata: FunctionMetadata, callback: FunctionCallback) => {
        if (this.functions.some((f) => f.metadata.name === metadata.name)) {
          throw new Error(`A function named "${metadata.name}" is already registered.`);
        }
        const entry = { metadata, callback };
        this.functions.push(entry);
        return new Disposable(() => this.functions.splice(this.functions.indexOf(entry), 1));
      },
      registerHook: (name: string, callback: HookCallback) => {
        const list = this.hooks.get(name) ?? [];
        list.push(callback);
        this.hooks.set(name, list);
        return new Disposable(() => list.splice(list.indexOf(callback), 1));
      },
      // Its presence tells @azure/functions that this "worker" is recent enough for log routing.
      log: (level: string, category: string, message: string) => this.sink(level, category, message),
    };
  }

  async runHooks(name: string, context: unknown): Promise<void> {
    for (const hook of this.hooks.get(name) ?? []) await hook(context);
  }

  triggerOf(fn: RegisteredFunction): [string, BindingMetadata] {
    const entry = Object.entries(fn.metadata.bindings).find(([, b]) => /trigger$/i.test(b.type));
    if (!entry) throw new Error(`Function "${fn.metadata.name}" has no trigger binding.`);
    return entry;
  }
}
