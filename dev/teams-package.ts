import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { APP_ROOT, localSettings } from './settings';
import { PACKAGE_FILE_NAME, buildTeamsPackage } from './teams/manifest';

// `npm run teams:package [-- --client-id <guid>] [--app-id <guid>] [--out <file>]`: the Teams app
// package (manifest.json, color.png, outline.png) a tenant admin uploads, for this deployment's
// API app registration.

const USAGE = `usage: npm run teams:package -- [--client-id <API's Application (client) ID>] [--app-id <Teams app GUID>] [--out <zip>]
  --client-id  defaults to ENTRA_CLIENT_ID (environment, then local.settings.json)
  --app-id     the manifest's own id; defaults to the one in teams/manifest.json
  --out        defaults to dist/teams/${PACKAGE_FILE_NAME}`;

function main(): void {
  const { values } = parseArgs({
    options: {
      'client-id': { type: 'string' },
      'app-id': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // A package for the local stack's made-up app registration would install in a real tenant and
  // then fail every send with 403, so there is no fallback: the id must be this deployment's.
  const clientId = values['client-id'] || localSettings(process.env).ENTRA_CLIENT_ID;
  if (!clientId) {
    console.error(
      'No client id: set ENTRA_CLIENT_ID (in the environment or local.settings.json) to the API app ' +
        "registration's Application (client) ID, or pass --client-id <guid>.\n\n" +
        USAGE,
    );
    process.exit(2);
  }
  const { zip, manifest } = buildTeamsPackage({
    clientId,
    ...(values['app-id'] ? { appId: values['app-id'] } : {}),
  });
  const out = path.resolve(values.out ?? path.join(APP_ROOT, 'dist', 'teams', PACKAGE_FILE_NAME));
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, zip);
  console.log(out);
  console.error(
    `Teams app ${manifest.id} (manifest ${manifest.manifestVersion}) for the app registration ${manifest.webApplicationInfo?.id}.`,
  );
  if (JSON.stringify(manifest.developer).includes('example.com')) {
    console.error(
      'Note: the developer URLs in teams/manifest.json are still example.com; put your own before publishing.',
    );
  }
}

try {
  main();
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
}
