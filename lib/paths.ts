// Files that ship beside the code (Lua scripts, samples), found from the package root so that
// the TypeScript sources and the bundle in dist/ resolve them alike.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function projectRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the package root (package.json)');
    dir = up;
  }
  root = dir;
  return dir;
}

export function projectPath(...parts: string[]): string {
  return join(projectRoot(), ...parts);
}
