import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Workspace tests resolve sibling packages from their TypeScript sources: no build needed.
const root = fileURLToPath(new URL('.', import.meta.url));
const alias = Object.fromEntries(
  readdirSync(`${root}packages`).map((dir) => [`@datapath/${dir}`, `${root}packages/${dir}/src/index.ts`]),
);
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
          pool: 'forks',
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
