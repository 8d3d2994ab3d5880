import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { colorIcon, outlineIcon } from './teams/icons';
import { APP_ROOT } from './root';

// `npm run build && node dist/dev/teams-icons.js`: redraws teams/color.png and teams/outline.png
// (the committed ones came from here). Only needed after changing dev/teams/icons.ts.

for (const [file, png] of [
  ['color.png', colorIcon()],
  ['outline.png', outlineIcon()],
] as const) {
  const target = path.join(APP_ROOT, 'teams', file);
  writeFileSync(target, png);
  console.log(`Wrote ${path.relative(process.cwd(), target)} (${png.length} bytes).`);
}
