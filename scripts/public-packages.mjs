// The published workspace packages: every packages/* directory whose package.json is not private.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** @returns {{ dir: string, name: string, manifest: any }[]} */
export function publicPackages(root = process.cwd()) {
  return readdirSync(join(root, 'packages'))
    .map((d) => join('packages', d))
    .filter((dir) => existsSync(join(root, dir, 'package.json')))
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
      return { dir, name: manifest.name, manifest };
    })
    .filter((p) => !p.manifest.private)
    .sort((a, b) => a.dir.localeCompare(b.dir));
}
