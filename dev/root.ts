import { existsSync } from 'node:fs';
import path from 'node:path';

/** The repository root: the nearest folder above this file with a package.json. The same from
 * dev/ (jest runs the sources) and dist/dev/ (node runs the build). */
function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
  return dir;
}

export const APP_ROOT = findRoot(__dirname);
