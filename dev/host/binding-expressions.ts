/**
 * `%NAME%` placeholders in a binding's values (a queue name, a timer schedule) resolved from the settings,
 * as the host's INameResolver does. A name with no value is an error, naming it.
 */
export function resolveSettings(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/%([^%]+)%/g, (_, name: string) => {
    const resolved = env[name];
    if (resolved === undefined || resolved === '')
      throw new Error(`'%${name}%' does not resolve to a value.`);
    return resolved;
  });
}
