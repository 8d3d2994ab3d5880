/**
 * `create()` run on the first call of the returned function, and its result returned from then
 * on. A `create` that throws is run again at the next call (nothing is kept).
 *
 * For the SDK clients the first request may not need: requiring a package inside `create` defers
 * loading and initialising it (in the bundle too, where esbuild wraps a required module in a
 * function run at its first `require`).
 */
export function onFirstUse<T>(create: () => T): () => T {
  let value: { readonly it: T } | undefined;
  return () => (value ??= { it: create() }).it;
}
