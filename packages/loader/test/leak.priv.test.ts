import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { leakedFds, openFds, requireRoot } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { compile, load, openObject } from '../src/index.js';

const bpfDir = fileURLToPath(new URL('./bpf/', import.meta.url));

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('leak warnings', () => {
  it('warns when a Collection is collected without close(), and not after close()', async (ctx) => {
    requireRoot(ctx);
    const obj = (await compile({ files: [join(bpfDir, 'connect4.bpf.c')] })).path;
    const warnings: string[] = [];
    const onWarning = (w: Error) => {
      if (w.name === 'DatapathLeakWarning') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    const before = openFds();
    try {
      (() => {
        load(openObject(obj)); // dropped without close()
        load(openObject(obj)).close();
      })();
      for (let i = 0; i < 20 && warnings.length === 0; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(warnings).toEqual([
        expect.stringContaining('a loader Collection was garbage-collected without close()'),
      ]);
    } finally {
      process.off('warning', onWarning);
      // What the dropped collection held stays open until exit (that is the warning): close it here.
      for (const { fd } of leakedFds(before, openFds())) closeSync(fd);
    }
  });
});
