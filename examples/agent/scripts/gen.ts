// Rewrites src/datapath.gen.ts from bpf/datapath.c (run after changing the C): pnpm run gen
// The generator's text goes through the repository's formatter (its long constant lines get wrapped).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GENERATED, generateDatapathModule } from '../src/layout.js';

const BIOME = fileURLToPath(new URL('../../../node_modules/.bin/biome', import.meta.url));

/** The module text as `biome format` writes it. */
export function formatted(text: string): string {
  return execFileSync(BIOME, ['format', `--stdin-file-path=${GENERATED}`], { input: text, encoding: 'utf8' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { text } = await generateDatapathModule();
  writeFileSync(GENERATED, formatted(text));
  console.log(`wrote ${GENERATED}`);
}
