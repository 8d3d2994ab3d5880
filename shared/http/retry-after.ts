/**
 * How long a throttled or busy service asked us to wait, in whole seconds: Azure's
 * `retry-after-ms` / `x-ms-retry-after-ms`, or `Retry-After` as delta-seconds or an HTTP date
 * (RFC 9110 §10.2.3). At least 1: "0" would send our own callers straight back.
 */
export function retryAfterSeconds(
  header: (name: string) => string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const raw = header(name)?.trim();
    if (raw && /^\d+$/.test(raw)) return Math.max(1, Math.ceil(Number(raw) / 1000));
  }
  const raw = header('retry-after')?.trim();
  if (!raw) return undefined;
  if (/^\d+$/.test(raw)) return Math.max(1, Number(raw));
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(1, Math.ceil((at - now) / 1000));
}
