// Runs the README's TypeScript examples as written (imports mapped to the sources, the CNI directory to a
// temporary one) and checks what they print.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as fileStore from '../src/file-store.js';
import * as main from '../src/index.js';

const ipam = { ...main, ...fileStore };

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

function run(code: string, dir: string): string[] {
  const out: string[] = [];
  const body = code
    .replace(/import \{([^}]*)\} from '@datapath\/ipam(?:\/file-store)?';/g, 'const {$1} = __ipam;')
    .replaceAll('/var/lib/cni/networks/datapath', dir);
  const log = (...args: unknown[]): void => {
    out.push(
      args
        .map((a) => (typeof a === 'string' ? a : inspect(a, { breakLength: Number.POSITIVE_INFINITY })))
        .join(' '),
    );
  };
  new Function('__ipam', 'console', body)(ipam, { log });
  return out;
}

describe('README examples', () => {
  it('has the agent and the operator example, each at most ~12 lines of code', () => {
    expect(blocks).toHaveLength(2);
    for (const b of blocks)
      expect(
        b
          .trim()
          .split('\n')
          .filter((l) => l.trim() !== '').length,
      ).toBeLessThanOrEqual(12);
  });

  it('agent example: dual-stack pod IPs with an owner in a FileStore, then released', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dp-readme-'));
    try {
      const out = run(blocks[0]!, dir);
      expect(out).toHaveLength(1);
      const [v4, v6, owned] = out[0]!.split(' ');
      expect(v4).toMatch(/^10\.244\.1\.\d+$/);
      expect(v6).toMatch(/^fd00:10:244:1::/);
      expect(owned).toBe('2');
      // Released into the cooldown: both IPs stay out of allocation, owned by nobody.
      const store = new ipam.FileStore(dir);
      const after = new ipam.HostScope({ v4: ['10.244.1.0/24'], v6: ['fd00:10:244:1::/64'], store });
      expect(after.dump().allocations).toEqual({});
      expect(Object.keys(after.dump().cooling).sort()).toEqual([v4, v6].sort());
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('operator example: prints the node CIDRs the comments claim', () => {
    const out = run(blocks[1]!, '');
    expect(out).toEqual([
      "{ v4: [ '10.244.1.0/24' ], v6: [ 'fd00:10:244:1::/64' ] }",
      "true [ 'node-a', 'node-b' ]",
    ]);
    const comments = [...blocks[1]!.matchAll(/console\.log\(.*\);\s*\/\/ (.*)$/gm)].map((m) => m[1]);
    expect(comments).toEqual(out);
  });
});
