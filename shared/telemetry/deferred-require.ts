import Module from 'node:module';

// The Azure Monitor SDK `require`s at its top every module it might use: the database and logging
// instrumentations whether they are enabled or not, and through OpenTelemetry's NodeSDK every OTLP,
// Zipkin and Prometheus exporter and the B3 and Jaeger propagators, whether the environment asks for
// them or not. Together about a thousand files, most of a cold start with telemetry on. Compiled
// CommonJS reads a module's exports at each use (`mod.Name`), not when it is required, so a stand-in
// that loads the real module at its first use changes nothing for code that uses it, and code that
// never does never pays for it.

type RequireMethod = (this: NodeJS.Module, id: string) => unknown;

/**
 * Runs `load` (a synchronous `require` of a package) with every `require` of a module named in
 * `deferred`, made while it runs, answered by a stand-in that loads the real module at its first
 * use. Side effect: `Module.prototype.require` is wrapped for the duration of `load` only.
 *
 * Only plain `require` calls are seen: a bundle that inlined the package would load everything.
 */
export function withDeferredRequires<T>(deferred: ReadonlySet<string>, load: () => T): T {
  const proto = Module.prototype as unknown as { require: RequireMethod };
  const original = proto.require;
  let active = true;
  const deferring: RequireMethod = function (this: NodeJS.Module, id: string) {
    if (!active || !deferred.has(id)) return original.call(this, id);
    return onFirstUse(() => original.call(this, id) as object);
  };
  proto.require = deferring;
  try {
    return load();
  } finally {
    // Inactive from now on even if someone wrapped it in turn (require-in-the-middle does); then
    // their wrapper stays, calling through this one.
    active = false;
    if (proto.require === deferring) proto.require = original;
  }
}

/** An object that stands for the module `load` returns, loading it when first looked into. */
function onFirstUse(load: () => object): object {
  let real: object | undefined;
  const target = (): object => (real ??= load());
  return new Proxy(
    {},
    {
      get: (_, key) => Reflect.get(target(), key) as unknown,
      set: (_, key, value) => Reflect.set(target(), key, value),
      has: (_, key) => Reflect.has(target(), key),
      ownKeys: () => Reflect.ownKeys(target()),
      getOwnPropertyDescriptor: (_, key) => {
        const descriptor = Reflect.getOwnPropertyDescriptor(target(), key);
        // A proxy may not report a property its own (empty) target lacks as non-configurable.
        return descriptor && { ...descriptor, configurable: true };
      },
    },
  );
}
