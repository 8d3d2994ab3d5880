import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { APP_ROOT } from '../root';
import { pngHeader } from './png';
import { zip } from './zip';

/** Where the manifest template, the icons and the vendored manifest schema live. */
export const TEAMS_DIR = path.join(APP_ROOT, 'teams');

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The parts of a Teams app manifest this packager reads or fills; the schema checks the rest. */
export interface TeamsManifest {
  manifestVersion: string;
  id: string;
  icons: { color: string; outline: string };
  webApplicationInfo?: { id: string; resource?: string };
  activities?: { activityTypes?: { type: string; description: string; templateText: string }[] };
  [key: string]: unknown;
}

export function readManifestTemplate(dir: string = TEAMS_DIR): TeamsManifest {
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as TeamsManifest;
}

/**
 * The committed manifest made into one tenant's: `webApplicationInfo` names the API's app
 * registration (Graph delivers an activity only when the Teams app whose `webApplicationInfo.id`
 * is the calling app's client id is installed for the recipient), and `id` the Teams app.
 * Does not change `template`.
 */
export function toPackagedManifest(
  template: TeamsManifest,
  ids: { clientId: string; appId?: string },
): TeamsManifest {
  if (!GUID.test(ids.clientId)) {
    throw new Error(`The client id "${ids.clientId}" is not a GUID: give the API's Application (client) ID.`);
  }
  if (ids.appId !== undefined && !GUID.test(ids.appId)) {
    throw new Error(`The Teams app id "${ids.appId}" is not a GUID.`);
  }
  const clientId = ids.clientId.toLowerCase();
  return {
    ...template,
    id: ids.appId?.toLowerCase() ?? template.id,
    webApplicationInfo: { ...template.webApplicationInfo, id: clientId, resource: `api://${clientId}` },
  };
}

const validators = new Map<string, ValidateFunction>();

/**
 * Validates against the vendored MicrosoftTeams.schema.json (teams/schema/). That schema declares
 * draft-04 in `$schema` yet uses draft-06/07 keywords (`const`, `if`/`then`) and none of draft-04's
 * own semantics (boolean `exclusiveMinimum`, `id` as a schema id; the one keyword it puts beside a
 * `$ref`, which draft-04 ignores, is a `type` equal to the target's); Ajv's draft-07 class therefore
 * validates it as written once `$schema` is set aside (Ajv 8 ships no draft-04 meta-schema).
 * test/teams/manifest.test.ts checks those facts of the vendored file, so a schema update that
 * breaks them fails there. Strict about unknown keywords; Microsoft's schema does not pass Ajv's
 * stricter style lints (`strictTypes`, `strictRequired`), which change no validation result.
 */
export function validateManifest(manifest: unknown, dir: string = TEAMS_DIR): string[] {
  const schemaFile = path.join(dir, 'schema', 'MicrosoftTeams.schema.json');
  let validator = validators.get(schemaFile);
  if (!validator) {
    const { $schema: _draft04, ...schema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<
      string,
      unknown
    >;
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
    addFormats(ajv);
    validator = ajv.compile(schema);
    validators.set(schemaFile, validator);
  }
  if (validator(manifest)) return [];
  return (validator.errors ?? []).map(describe);
}

function describe(e: ErrorObject): string {
  const where = e.instancePath || '(manifest)';
  if (e.keyword === 'additionalProperties') {
    return `${where}: unknown property "${String(e.params.additionalProperty)}"`;
  }
  return `${where} ${e.message ?? 'is invalid'}`;
}

/** Icon sizes Teams requires on upload. */
const ICON_SIZES = { color: 192, outline: 32 } as const;

export const PACKAGE_FILE_NAME = 'graph-notify-teams.zip';

/**
 * The Teams app package a tenant admin uploads: manifest.json and the two icons at the zip's root.
 * Reads teams/ (the manifest template and the icons the manifest names); throws, naming every
 * problem, when the manifest does not validate or an icon is not a PNG of the required size.
 */
export function buildTeamsPackage(
  ids: { clientId: string; appId?: string },
  dir: string = TEAMS_DIR,
): { zip: Buffer; manifest: TeamsManifest } {
  const manifest = toPackagedManifest(readManifestTemplate(dir), ids);
  const problems = validateManifest(manifest, dir);
  const files = [{ name: 'manifest.json', data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) }];
  for (const kind of ['color', 'outline'] as const) {
    const name = manifest.icons[kind];
    const size = ICON_SIZES[kind];
    if (name.includes('/') || name.includes('\\')) {
      problems.push(`icons.${kind}: "${name}" must be a file at the package root`);
      continue;
    }
    try {
      const data = readFileSync(path.join(dir, name));
      const { width, height } = pngHeader(data);
      if (width !== size || height !== size) {
        problems.push(`icons.${kind}: ${name} is ${width}×${height}, Teams requires ${size}×${size}`);
      }
      files.push({ name, data });
    } catch (err) {
      problems.push(`icons.${kind}: ${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`The Teams app manifest is not valid:\n  ${problems.join('\n  ')}`);
  }
  return { zip: zip(files), manifest };
}
