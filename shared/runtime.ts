import { loadConfig, type Config } from './config';
import { HealthService, httpProbe } from './health/health';
import { storageProbe } from './queue/probe';

// The one place the app is wired, once per worker. Settings are validated here, as the entry files
// load: a bad setting stops the app at startup with every problem named, not at the first request.
export const config: Config = loadConfig(process.env);

export const health = new HealthService([
  httpProbe(
    'identity',
    `${config.authorityHost}/${config.tenantId}/v2.0/.well-known/openid-configuration`,
    true,
  ),
  httpProbe('keyVault', `${config.keyVaultUrl}/secrets?api-version=7.5`),
  httpProbe('graph', `${config.graphBaseUrl}/me`),
  storageProbe(config.storageConnection),
]);
