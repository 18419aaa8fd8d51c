import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Workspace tests resolve sibling packages from their TypeScript sources: no build needed. Each entry of a
// package's `exports` map (`.` and subpaths such as `@datapath/ipam/file-store`) maps to `src/<name>.ts`.
const root = fileURLToPath(new URL('.', import.meta.url));
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const alias = readdirSync(`${root}packages`).flatMap((dir) => {
  const manifest = `${root}packages/${dir}/package.json`;
  const exportsMap: Record<string, unknown> = existsSync(manifest)
    ? (JSON.parse(readFileSync(manifest, 'utf8')).exports ?? {})
    : {};
  const subpaths = Object.keys(exportsMap)
    .filter((k) => k.startsWith('./') && !k.includes('*') && !k.endsWith('.json'))
    .map((k) => k.slice(2))
    .filter((sub) => existsSync(`${root}packages/${dir}/src/${sub}.ts`));
  return [
    ...subpaths.map((sub) => ({
      find: new RegExp(`^${escapeRe(`@datapath/${dir}/${sub}`)}$`),
      replacement: `${root}packages/${dir}/src/${sub}.ts`,
    })),
    {
      find: new RegExp(`^${escapeRe(`@datapath/${dir}`)}$`),
      replacement: `${root}packages/${dir}/src/index.ts`,
    },
  ];
});
const testDirs = ['packages/*/{src,test}/**', 'examples/*/{src,test}/**'];

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: [...testDirs.map((d) => `${d}/*.test.ts`), 'scripts/*.test.ts'],
          exclude: ['**/*.priv.test.ts', '**/node_modules/**', '**/dist/**'],
          testTimeout: 30_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'priv',
          include: testDirs.map((d) => `${d}/*.priv.test.ts`),
          exclude: ['**/node_modules/**', '**/dist/**'],
          globalSetup: ['packages/testutils/src/global-setup.ts'],
          // Fails a test file that leaves file descriptors open in its worker (STYLE rule 14).
          setupFiles: ['packages/testutils/src/fd-check.ts'],
          pool: 'forks',
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
