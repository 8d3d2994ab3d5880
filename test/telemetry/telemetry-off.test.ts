import path from 'node:path';
import { devUser } from '../../dev/standins/identities';
import { loadTelemetrySettings, noTelemetry, startTelemetry } from '../../shared/telemetry';
import { startTestApp } from '../support/stack';
import { hostProbe, nonLoopback, telemetryModules } from './probe';

// Telemetry off (no connection string): the app never loads the SDK or OpenTelemetry, and
// attempts no telemetry traffic. Checked in the host's own process, after real work.

it('never loads the SDK and talks to nothing but loopback when the connection string is unset', async () => {
  const probe = hostProbe();
  const app = await startTestApp({ settings: probe.settings });
  try {
    expect(app.stack.ingestion).toBeUndefined();
    expect(app.stack.settings.APPLICATIONINSIGHTS_CONNECTION_STRING).toBeUndefined();
    const token = await app.stack.entra!.issueUserToken({ user: devUser('telemetry-off').oid });
    const res = await fetch(`${app.api}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ payload: { visualContent: { title: 'Hello' } } }),
    });
    expect(res.status).toBe(201);
  } finally {
    await app.stop();
  }
  const modules = probe.modules();
  // The app's bundle was loaded (the probe saw it), the telemetry modules were not.
  expect(modules.some((m) => m.endsWith(path.join('dist', 'app', 'index.js')))).toBe(true);
  expect(telemetryModules(modules)).toEqual([]);
  expect(nonLoopback(probe.sockets())).toEqual([]);
});

describe('loadTelemetrySettings', () => {
  const cs =
    'InstrumentationKey=00000000-0000-4000-8000-00000000a1a1;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/';

  it('is off without a connection string, and then starts nothing', () => {
    expect(loadTelemetrySettings({})).toBeUndefined();
    expect(loadTelemetrySettings({ APPLICATIONINSIGHTS_CONNECTION_STRING: '  ' })).toBeUndefined();
    expect(startTelemetry(undefined, { identity: '', keyVault: '', graph: '' })).toBe(noTelemetry);
  });

  it('reads the endpoint and samples everything by default', () => {
    expect(loadTelemetrySettings({ APPLICATIONINSIGHTS_CONNECTION_STRING: cs })).toEqual({
      connectionString: cs,
      ingestionEndpoint: 'https://westeurope-5.in.applicationinsights.azure.com',
      samplingRatio: 1,
    });
    expect(
      loadTelemetrySettings({
        APPLICATIONINSIGHTS_CONNECTION_STRING: cs,
        APPLICATIONINSIGHTS_SAMPLING_PERCENTAGE: '25',
      })?.samplingRatio,
    ).toBe(0.25);
  });

  it('names every problem at once', () => {
    expect(() =>
      loadTelemetrySettings({
        APPLICATIONINSIGHTS_CONNECTION_STRING: 'IngestionEndpoint=http://example.test/',
        APPLICATIONINSIGHTS_SAMPLING_PERCENTAGE: '150',
      }),
    ).toThrow(/InstrumentationKey[\s\S]*https[\s\S]*0–100/);
  });
});
