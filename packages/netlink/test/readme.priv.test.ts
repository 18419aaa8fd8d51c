import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requireRoot, run, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';

const example = fileURLToPath(new URL('./fixtures/subscribe-example.ts', import.meta.url));
const readme = fileURLToPath(new URL('../README.md', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('README example', () => {
  it('is the tested example, verbatim', () => {
    expect(readFileSync(readme, 'utf8')).toContain(readFileSync(example, 'utf8').trim());
  });

  it('lists a namespace, then prints the address added after the listing', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      const child = spawn(process.execPath, ['--import', 'tsx', example, t.name, '5'], { cwd: root });
      let out = '';
      let added = false;
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (!added && out.includes('synced')) {
          added = true;
          run('ip', ['-n', t.name, 'addr', 'add', '10.244.40.1/32', 'dev', 'lo']);
        }
      });
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code).toBe(0);
      const lines = out.trim().split('\n');
      expect(lines).toEqual([
        'list new link lo',
        'list new addr 127.0.0.1/8',
        'list new addr ::1/128',
        'synced',
        'notify new addr 10.244.40.1/32',
      ]);
    });
  });
});
