// Rewrites src/datapath.gen.ts from bpf/datapath.c (run after changing the C): pnpm run gen
import { writeFileSync } from 'node:fs';
import { GENERATED, generateDatapathModule } from '../src/layout.js';

const { text } = await generateDatapathModule();
writeFileSync(GENERATED, text);
console.log(`wrote ${GENERATED}`);
