import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { datapathCniJsonSchema } from '../src/schema.js';

describe('datapath-cni.schema.json', () => {
  it('is current with the zod schema the plugin validates with (regenerate: pnpm exec tsx scripts/gen-schema.ts)', () => {
    const committed = JSON.parse(
      readFileSync(new URL('../datapath-cni.schema.json', import.meta.url), 'utf8'),
    );
    expect(committed).toEqual(datapathCniJsonSchema());
  });
});
