import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';

const example = fileURLToPath(new URL('./fixtures/ipcache-example.ts', import.meta.url));
const readme = fileURLToPath(new URL('../README.md', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('README example', () => {
  it('is the tested example, verbatim', () => {
    expect(readFileSync(readme, 'utf8')).toContain(readFileSync(example, 'utf8').trim());
    // The ring buffer example runs in packages/loader/test/events.priv.test.ts (it needs a program).
    const ringbuf = fileURLToPath(new URL('./fixtures/ringbuf-example.ts', import.meta.url));
    expect(readFileSync(readme, 'utf8')).toContain(readFileSync(ringbuf, 'utf8').trim());
  });

  it('creates, pins, fills and dumps an ipcache-style LPM map, then removes its pin', async (ctx) => {
    requireRoot(ctx);
    const pin = `/sys/fs/bpf/${uniqueName()}`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', example, pin], {
      cwd: root,
    });
    expect(stdout.trim().split('\n').sort()).toEqual(
      [
        '0.0.0.0/0 identity=2 via=0.0.0.0',
        '10.244.1.0/24 identity=6 via=192.168.0.12',
        '10.244.1.7/32 identity=4242 via=192.168.0.12',
        'lookup 10.244.1.9: identity=6 (pressure 0.006)',
      ].sort(),
    );
    expect(existsSync(pin)).toBe(false);
  });
});
