import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { APP_ROOT } from './root';

export { APP_ROOT };

/**
 * Settings as Azure Functions Core Tools assembles them: the environment, then the `Values` of
 * `local.settings.json` for what the environment does not set (the environment always wins).
 */
export function localSettings(env: NodeJS.ProcessEnv, appRoot: string = APP_ROOT): Record<string, string> {
  const file = path.join(appRoot, 'local.settings.json');
  const merged: Record<string, string> = {};
  if (existsSync(file)) {
    // Core Tools reads Values as strings; numbers and booleans are taken as their text.
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as {
      Values?: Record<string, string | number | boolean | null>;
    };
    for (const [key, value] of Object.entries(parsed.Values ?? {})) {
      if (value !== null) merged[key] = String(value);
    }
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

export interface HostJson {
  routePrefix: string;
  queues: {
    messageEncoding: 'base64' | 'none';
    batchSize: number;
    newBatchThreshold: number;
    maxDequeueCount: number;
    visibilityTimeoutMs: number;
    maxPollingIntervalMs: number;
  };
}

/** `hh:mm:ss` (the form host.json uses for timespans) to milliseconds. */
export function timespanMs(value: unknown, fallbackMs: number): number {
  if (typeof value !== 'string') return fallbackMs;
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(value);
  if (!match) throw new Error(`host.json: "${value}" is not a timespan (hh:mm:ss)`);
  const [, days, h, m, s, frac] = match;
  return (
    ((Number(days ?? 0) * 24 + Number(h)) * 3600 + Number(m) * 60 + Number(s)) * 1000 +
    (frac ? Math.round(Number(`0.${frac}`) * 1000) : 0)
  );
}

/** The host.json values the local host honours, with the Functions host's own defaults. */
export function readHostJson(appRoot: string = APP_ROOT): HostJson {
  const raw = JSON.parse(readFileSync(path.join(appRoot, 'host.json'), 'utf8')) as {
    extensions?: { http?: { routePrefix?: string }; queues?: Record<string, unknown> };
  };
  const q = raw.extensions?.queues ?? {};
  const num = (key: string, fallback: number): number => (typeof q[key] === 'number' ? q[key] : fallback);
  const batchSize = num('batchSize', 16);
  return {
    routePrefix: raw.extensions?.http?.routePrefix ?? 'api',
    queues: {
      messageEncoding: q.messageEncoding === 'none' ? 'none' : 'base64',
      batchSize,
      newBatchThreshold: num('newBatchThreshold', Math.floor(batchSize / 2)),
      maxDequeueCount: num('maxDequeueCount', 5),
      visibilityTimeoutMs: timespanMs(q.visibilityTimeout, 0),
      maxPollingIntervalMs: timespanMs(q.maxPollingInterval, 60_000),
    },
  };
}
