import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32, inflateRawSync } from 'node:zlib';
import { APP_ROOT } from '../../dev/root';
import {
  TEAMS_DIR,
  buildTeamsPackage,
  readManifestTemplate,
  toPackagedManifest,
  validateManifest,
  type TeamsManifest,
} from '../../dev/teams/manifest';
import { decodePng, pngHeader } from '../../dev/teams/png';

// The Teams app package a tenant admin uploads: its manifest validates against Microsoft's
// published schema (vendored in teams/schema/), names this deployment's app registration, declares
// the activity types the app sends, and the zip holds exactly what Teams reads.

const CLIENT_ID = 'c0ffee00-1234-4abc-8def-0123456789ab';
const SCHEMA_FILE = path.join(TEAMS_DIR, 'schema', 'MicrosoftTeams.schema.json');

/** An independent ZIP reader (not the writer's code): every entry through the central directory,
 * its local header, inflated and checked against its CRC-32. */
function unzip(archive: Buffer): Map<string, Buffer> {
  const eocd = archive.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  expect(eocd).toBeGreaterThanOrEqual(0);
  const count = archive.readUInt16LE(eocd + 10);
  let at = archive.readUInt32LE(eocd + 16);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    expect(archive.readUInt32LE(at)).toBe(0x02014b50);
    const method = archive.readUInt16LE(at + 10);
    const crc = archive.readUInt32LE(at + 16);
    const compressedSize = archive.readUInt32LE(at + 20);
    const size = archive.readUInt32LE(at + 24);
    const nameLength = archive.readUInt16LE(at + 28);
    const extra = archive.readUInt16LE(at + 30);
    const comment = archive.readUInt16LE(at + 32);
    const localAt = archive.readUInt32LE(at + 42);
    const name = archive.toString('utf8', at + 46, at + 46 + nameLength);
    expect(archive.readUInt32LE(localAt)).toBe(0x04034b50);
    expect(archive.toString('utf8', localAt + 30, localAt + 30 + archive.readUInt16LE(localAt + 26))).toBe(
      name,
    );
    const start = localAt + 30 + archive.readUInt16LE(localAt + 26) + archive.readUInt16LE(localAt + 28);
    const stored = archive.subarray(start, start + compressedSize);
    const data = method === 8 ? inflateRawSync(stored) : stored;
    expect(method === 0 || method === 8).toBe(true);
    expect(data.length).toBe(size);
    expect(crc32(data)).toBe(crc);
    files.set(name, data);
    at += 46 + nameLength + extra + comment;
  }
  return files;
}

function packaged(): TeamsManifest {
  return toPackagedManifest(readManifestTemplate(), { clientId: CLIENT_ID });
}

describe('the vendored Teams manifest schema', () => {
  const text = readFileSync(SCHEMA_FILE, 'utf8');
  const schema = JSON.parse(text) as Record<string, unknown>;

  it('is the file its note names, byte for byte, and the version the manifest declares', () => {
    const note = readFileSync(path.join(TEAMS_DIR, 'schema', 'README.md'), 'utf8');
    expect(note).toContain(createHash('sha256').update(text).digest('hex'));
    const version = (schema.properties as { manifestVersion: { const: string } }).manifestVersion.const;
    const manifest = readManifestTemplate();
    expect(manifest.manifestVersion).toBe(version);
    expect(manifest.$schema).toBe(
      `https://developer.microsoft.com/json-schemas/teams/v${version}/MicrosoftTeams.schema.json`,
    );
  });

  it("means the same under Ajv's draft-07 rules as under the draft-04 it declares", () => {
    // dev/teams/manifest.ts validates with Ajv's draft-07 class. That is only right while the
    // schema uses none of the places where the drafts differ; a future version that does fails here.
    expect(schema.$schema).toBe('http://json-schema.org/draft-04/schema#');
    const differences: string[] = [];
    const resolve = (ref: string): Record<string, unknown> =>
      ref
        .replace(/^#\//, '')
        .split('/')
        .reduce<Record<string, unknown>>((node, key) => node[key] as Record<string, unknown>, schema);
    const walk = (node: unknown, where: string): void => {
      if (Array.isArray(node)) return node.forEach((item, i) => walk(item, `${where}/${i}`));
      if (!node || typeof node !== 'object') return;
      const obj = node as Record<string, unknown>;
      // draft-04: boolean exclusiveMinimum/Maximum; draft-06+: numbers.
      for (const key of ['exclusiveMinimum', 'exclusiveMaximum']) {
        if (key in obj) differences.push(`${where}/${key}`);
      }
      // draft-04 names a schema's id `id`; draft-06+ `$id` (a property called "id" is an object).
      if (typeof obj.id === 'string') differences.push(`${where}/id`);
      if (typeof obj.$ref === 'string') {
        if (!obj.$ref.startsWith('#/')) differences.push(`${where}/$ref (external)`);
        // draft-04..07 ignore a $ref's siblings, Ajv 8 applies them: harmless only if they agree.
        for (const key of Object.keys(obj)) {
          if (['$ref', 'description', 'default'].includes(key)) continue;
          if (key === 'type' && resolve(obj.$ref).type === obj.type) continue;
          differences.push(`${where}/${key} beside $ref`);
        }
      }
      for (const [key, value] of Object.entries(obj)) walk(value, `${where}/${key}`);
    };
    walk(schema, '#');
    expect(differences).toEqual([]);
  });
});

describe('teams/manifest.json as `npm run teams:package` fills it', () => {
  it('validates against the schema, naming the given app registration', () => {
    const manifest = packaged();
    expect(validateManifest(manifest)).toEqual([]);
    expect(manifest.webApplicationInfo).toEqual({ id: CLIENT_ID, resource: `api://${CLIENT_ID}` });
    expect(manifest.id).toBe(readManifestTemplate().id);
    expect(
      toPackagedManifest(readManifestTemplate(), {
        clientId: CLIENT_ID.toUpperCase(),
        appId: '0d15ea5e-0000-4000-8000-0000000000aa',
      }),
    ).toMatchObject({ id: '0d15ea5e-0000-4000-8000-0000000000aa', webApplicationInfo: { id: CLIENT_ID } });
  });

  it('declares a templated activity type, approvalRequired, and the RSC permission to send as the app', () => {
    const manifest = packaged();
    const types = manifest.activities?.activityTypes ?? [];
    expect(types.map((t) => t.type)).toContain('approvalRequired');
    const approval = types.find((t) => t.type === 'approvalRequired')!;
    expect(approval.templateText).toBe('{actor} needs your approval for {approvalTaskId}');
    // systemDefault is reserved: Graph takes it without a declaration in the manifest.
    expect(types.map((t) => t.type)).not.toContain('systemDefault');
    expect(manifest.authorization).toEqual({
      permissions: { resourceSpecific: [{ name: 'TeamsActivity.Send.User', type: 'Application' }] },
    });
  });

  it('is not valid as committed (the client id is filled in at packaging) nor when broken', () => {
    expect(validateManifest(readManifestTemplate()).join('\n')).toMatch(
      /\/webApplicationInfo\/id must match/,
    );

    const { webApplicationInfo, ...withoutApp } = packaged();
    expect(
      validateManifest({ ...withoutApp, webApplicationInfo: { resource: webApplicationInfo!.resource } }),
    ).toEqual(["/webApplicationInfo must have required property 'id'"]);

    const badActivity = {
      ...packaged(),
      activities: { activityTypes: [{ type: 'approvalRequired', description: 'no template' }] },
    };
    expect(validateManifest(badActivity)).toEqual([
      "/activities/activityTypes/0 must have required property 'templateText'",
    ]);

    const unknownField = { ...packaged(), activities: { activityTypes: [], feed: true } };
    expect(validateManifest(unknownField)).toEqual(['/activities: unknown property "feed"']);
  });

  it('refuses a client id or Teams app id that is not a GUID, leaving the template as it was', () => {
    const template = readManifestTemplate();
    const before = JSON.stringify(template);
    expect(() => toPackagedManifest(template, { clientId: 'graph-notify' })).toThrow(/not a GUID/);
    expect(() => toPackagedManifest(template, { clientId: CLIENT_ID, appId: 'x' })).toThrow(/not a GUID/);
    toPackagedManifest(template, { clientId: CLIENT_ID });
    expect(JSON.stringify(template)).toBe(before);
  });
});

describe('the icons', () => {
  it('are PNGs of the sizes Teams requires: color 192×192 opaque, outline 32×32 white on transparent', () => {
    const color = decodePng(readFileSync(path.join(TEAMS_DIR, 'color.png')));
    expect([color.width, color.height]).toEqual([192, 192]);
    expect(color.rgba.filter((_, i) => i % 4 === 3 && color.rgba[i] !== 255)).toHaveLength(0);
    const outline = decodePng(readFileSync(path.join(TEAMS_DIR, 'outline.png')));
    expect([outline.width, outline.height]).toEqual([32, 32]);
    let drawn = 0;
    const offWhite: number[] = [];
    for (let i = 0; i < outline.rgba.length; i += 4) {
      const [r, g, b, a] = outline.rgba.subarray(i, i + 4);
      if (a! > 0) drawn++;
      if (a! > 0 && (r !== 255 || g !== 255 || b !== 255)) offWhite.push(i / 4);
    }
    expect(offWhite).toEqual([]);
    expect(drawn).toBeGreaterThan(100);
    expect(drawn).toBeLessThan(32 * 32);
  });
});

describe('the package', () => {
  it('holds exactly manifest.json, color.png and outline.png at its root, readable back', () => {
    const { zip } = buildTeamsPackage({ clientId: CLIENT_ID });
    const files = unzip(zip);
    expect([...files.keys()].sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
    const manifest = JSON.parse(files.get('manifest.json')!.toString('utf8')) as TeamsManifest;
    expect(manifest.webApplicationInfo?.id).toBe(CLIENT_ID);
    expect(validateManifest(manifest)).toEqual([]);
    expect(files.get('color.png')!.equals(readFileSync(path.join(TEAMS_DIR, 'color.png')))).toBe(true);
    expect(pngHeader(files.get('outline.png')!)).toMatchObject({ width: 32, height: 32 });
    // Same inputs, same bytes: a rebuilt package is recognisably the same package.
    expect(buildTeamsPackage({ clientId: CLIENT_ID }).zip.equals(zip)).toBe(true);
  });

  it('is refused, naming the icon, when an icon has the wrong size', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'teams-package-'));
    try {
      cpSync(TEAMS_DIR, dir, { recursive: true });
      copyFileSync(path.join(TEAMS_DIR, 'outline.png'), path.join(dir, 'color.png'));
      expect(() => buildTeamsPackage({ clientId: CLIENT_ID }, dir)).toThrow(
        'icons.color: color.png is 32×32, Teams requires 192×192',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm run teams:package (dist/dev/teams-package.js)', () => {
  const cli = path.join(APP_ROOT, 'dist', 'dev', 'teams-package.js');
  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    promisify(execFile)(process.execPath, [cli, ...args], { cwd: APP_ROOT, env: { ...process.env, ...env } });

  it('is built (npm run build)', () => {
    expect(existsSync(cli)).toBe(true);
  });

  it('writes the zip for ENTRA_CLIENT_ID and prints its path', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'teams-cli-'));
    try {
      const out = path.join(dir, 'app.zip');
      const { stdout } = await run(['--out', out], { ENTRA_CLIENT_ID: CLIENT_ID });
      expect(stdout.trim()).toBe(out);
      const manifest = JSON.parse(unzip(readFileSync(out)).get('manifest.json')!.toString()) as TeamsManifest;
      expect(manifest.webApplicationInfo?.id).toBe(CLIENT_ID);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails with a clear message and no zip when no client id is given', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'teams-cli-'));
    try {
      const out = path.join(dir, 'app.zip');
      // An empty ENTRA_CLIENT_ID wins over local.settings.json, as Core Tools would have it.
      const failure = await run(['--out', out], { ENTRA_CLIENT_ID: '' }).then(
        () => undefined,
        (err: { code?: number; stderr?: string }) => err,
      );
      expect(failure?.code).toBe(2);
      expect(failure?.stderr).toMatch(/No client id: set ENTRA_CLIENT_ID .* or pass --client-id/);
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
