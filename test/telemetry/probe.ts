import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// A preload for the function host's process (NODE_OPTIONS=--require): it records the target of
// every outgoing socket as it connects, and the modules loaded when the process exits. What the
// app contacted and what it loaded is then read from outside, not taken on its word.

const PRELOAD = `
const fs = require('node:fs');
const net = require('node:net');
const socketLog = process.env.TEST_PROBE_SOCKETS;
const moduleLog = process.env.TEST_PROBE_MODULES;
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  try {
    // net.connect passes [options, callback] normalised into one array.
    let first = Array.isArray(args[0]) ? args[0][0] : args[0];
    let target;
    if (first && typeof first === 'object') {
      target = first.path ? 'pipe:' + first.path : (first.host || 'localhost') + ':' + first.port;
    } else {
      const host = typeof args[1] === 'string' ? args[1] : 'localhost';
      target = host + ':' + first;
    }
    fs.appendFileSync(socketLog, target + '\\n');
  } catch (err) {
    fs.appendFileSync(socketLog, 'unrecorded:' + String(err) + '\\n');
  }
  return connect.apply(this, args);
};
process.on('exit', () => {
  fs.writeFileSync(moduleLog, JSON.stringify(Object.keys(require.cache)));
});
`;

export interface HostProbe {
  /** Settings that load the probe into the host process. */
  settings: Record<string, string>;
  /** `host:port` of every socket the host opened so far. */
  sockets(): string[];
  /** Absolute paths of the modules loaded, once the host has exited. */
  modules(): string[];
}

export function hostProbe(): HostProbe {
  const dir = mkdtempSync(path.join(tmpdir(), 'graph-notify-probe-'));
  const preload = path.join(dir, 'probe.js');
  const sockets = path.join(dir, 'sockets.log');
  const modules = path.join(dir, 'modules.json');
  writeFileSync(preload, PRELOAD);
  writeFileSync(sockets, '');
  return {
    settings: {
      NODE_OPTIONS: `--require ${preload}`,
      TEST_PROBE_SOCKETS: sockets,
      TEST_PROBE_MODULES: modules,
    },
    sockets: () =>
      readFileSync(sockets, 'utf8')
        .split('\n')
        .filter((line) => line !== ''),
    modules: () => {
      if (!existsSync(modules)) throw new Error('The host has not exited: no module list yet.');
      return JSON.parse(readFileSync(modules, 'utf8')) as string[];
    },
  };
}

const LOOPBACK_TARGET = /^(127\.0\.0\.1|localhost|::1|\[::1\]):\d+$/;

/** Socket targets that are not loopback. */
export function nonLoopback(targets: string[]): string[] {
  return targets.filter((t) => !LOOPBACK_TARGET.test(t));
}

/** Loaded modules that belong to the telemetry SDK or OpenTelemetry. */
export function telemetryModules(modules: string[]): string[] {
  return modules.filter(
    (m) =>
      /[\\/]node_modules[\\/](applicationinsights|@opentelemetry|@azure[\\/]monitor-opentelemetry[^\\/]*)[\\/]/.test(
        m,
      ) || /[\\/]shared[\\/]telemetry[\\/]/.test(m),
  );
}

/**
 * Loaded modules of the instrumentations, exporters and propagators the app never uses: the
 * database and logging instrumentations, OTLP, Zipkin and Prometheus, B3 and Jaeger.
 */
export function unusedTelemetryModules(modules: string[]): string[] {
  return modules.filter((m) =>
    /[\\/]node_modules[\\/](@opentelemetry[\\/](instrumentation-(mongodb|mysql2?|pg|redis(-4)?|ioredis|bunyan|winston)|exporter-[^\\/]+|propagator-(b3|jaeger)|otlp-[^\\/]+|configuration)|@microsoft[\\/]applicationinsights-web-snippet)[\\/]/.test(
      m,
    ),
  );
}

/** Whether a module of this package (by name, `@scope/name`) was loaded. */
export function loadedPackage(modules: string[], name: string): boolean {
  const segment = name.split('/').join('[\\\\/]');
  return modules.some((m) => new RegExp(`[\\\\/]node_modules[\\\\/]${segment}[\\\\/]`).test(m));
}
