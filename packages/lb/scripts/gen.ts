// Rewrites src/netdev.gen.ts from bpf/netdev.c (run after changing the C): pnpm --filter @datapath/lb run gen
// The generator's text goes through the repository's formatter (its long constant lines get wrapped).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateNetdevModule, NETDEV_GENERATED } from '../src/netdev-layout.js';

const BIOME = fileURLToPath(new URL('../../../node_modules/.bin/biome', import.meta.url));

/** The module text as `biome format` writes it. */
export function formatted(text: string): string {
  return execFileSync(BIOME, ['format', `--stdin-file-path=${NETDEV_GENERATED}`], {
    input: text,
    encoding: 'utf8',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { text } = await generateNetdevModule();
  writeFileSync(NETDEV_GENERATED, formatted(text));
  console.log(`wrote ${NETDEV_GENERATED}`);
}
