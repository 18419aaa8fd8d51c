// Rewrites src/netdev.gen.ts from bpf/netdev.c (run after changing the C): pnpm --filter @datapath/lb run gen
import { writeFileSync } from 'node:fs';
import { generateNetdevModule, NETDEV_GENERATED } from '../src/netdev-layout.js';

const { text } = await generateNetdevModule();
writeFileSync(NETDEV_GENERATED, text);
console.log(`wrote ${NETDEV_GENERATED}`);
