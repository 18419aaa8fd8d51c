// Regenerates datapath-cni.schema.json (the documented config of the reference plugin) from the zod
// schema the plugin validates with. Run: pnpm exec tsx scripts/gen-schema.ts (a unit test checks it is current).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { datapathCniJsonSchema } from '../src/schema.js';

const file = fileURLToPath(new URL('../datapath-cni.schema.json', import.meta.url));
writeFileSync(file, `${JSON.stringify(datapathCniJsonSchema(), null, 2)}\n`);
console.log(file);
