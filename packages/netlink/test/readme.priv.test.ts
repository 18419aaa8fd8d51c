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

  // The second run has no native addon (DATAPATH_BPF_BACKEND=koffi): the socket is then watched by
  // @datapath/libbpf's documented timer fallback, with the same output.
  for (const backend of ['native', 'koffi'] as const) {
    it(`lists a namespace, then prints the address added after the listing (${backend} watcher)`, async (ctx) => {
      requireRoot(ctx);
      await withNetns(async (t) => {
        const env = { ...process.env, DATAPATH_BPF_BACKEND: backend };
        const child = spawn(process.execPath, ['--import', 'tsx', example, t.name, '5'], { cwd: root, env });
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
        expect(out.trim().split('\n')).toEqual([
          'list new link lo',
          'list new addr 127.0.0.1/8',
          'list new addr ::1/128',
          'synced',
          'notify new addr 10.244.40.1/32',
        ]);
      });
    });
  }
});
