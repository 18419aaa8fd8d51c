// The README example is real code: run it against a throwaway etcd and check what it prints.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startEtcd, type TestEtcd } from '@datapath/testutils';
import { afterAll, beforeAll, expect, it } from 'vitest';

const PKG = fileURLToPath(new URL('..', import.meta.url));
let etcd: TestEtcd;
let dir: string;

beforeAll(async () => {
  etcd = await startEtcd();
  dir = mkdtempSync(join(tmpdir(), 'dpt-readme-'));
}, 30_000);
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await etcd?.stop();
});

it('runs the two-node README example', async () => {
  const readme = readFileSync(join(PKG, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const file = join(dir, 'example.mts');
  writeFileSync(
    file,
    code!
      .replace("from '@datapath/kvstore'", `from ${JSON.stringify(join(PKG, 'src', 'index.ts'))}`)
      .replace('http://127.0.0.1:2379', etcd.endpoint),
  );
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: PKG });
  const lines = stdout.trim().split('\n');
  // two distinct blocks near the front of each cluster CIDR (a lost race may skip one or two)
  const pairs = [...lines[0]!.matchAll(/ipv4: '([^']+)', ipv6: '([^']+)'/g)].map((m) => [m[1]!, m[2]!]);
  expect(lines[0]).toMatch(/^node-a \{.*\} node-b \{.*\}$/);
  expect(pairs).toHaveLength(2);
  const front4 = ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24'];
  const front6 = ['fd00:10:244::/64', 'fd00:10:244:1::/64', 'fd00:10:244:2::/64'];
  for (const [v4, v6] of pairs) {
    expect(front4).toContain(v4);
    expect(front6).toContain(v6);
  }
  expect(pairs[0]![0]).not.toBe(pairs[1]![0]);
  expect(pairs[0]![1]).not.toBe(pairs[1]![1]);
  expect(lines).toContain("[ 'node-b' ]");
  expect(lines.some((l) => /^true \d+$/.test(l) && Number(l.split(' ')[1]) >= 256)).toBe(true);
}, 60_000);
