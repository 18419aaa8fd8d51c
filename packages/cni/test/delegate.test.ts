import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CniError, delegate } from '../src/index.js';

// Fake IPAM plugins as shell scripts: record what they were given, answer a fixed result or error.
const dir = mkdtempSync(join(tmpdir(), 'cni-delegate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): void {
  const f = join(dir, name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
}
script(
  'fake-ipam',
  `cat > "${dir}/stdin.$CNI_COMMAND"; echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME" > "${dir}/env.$CNI_COMMAND"
echo "log line" >&2
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.244.0.7/24","gateway":"10.244.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}'
exit 0`,
);
script('failing-ipam', `echo '{"code":11,"msg":"store locked","details":"retry"}'; exit 1`);
script('garbage-ipam', `echo 'segfault'; exit 2`);

const ctx = (stdin: string) => ({
  stdin,
  env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c9', CNI_IFNAME: 'eth0', PATH: process.env.PATH },
  path: ['/nonexistent', dir],
  cniVersion: '0.4.0',
});

describe('delegate', () => {
  it('execs the delegate from CNI_PATH with the same stdin and env, replacing CNI_COMMAND', async () => {
    const stdin = '{"cniVersion":"0.4.0","name":"n","type":"x","ipam":{"type":"fake-ipam"}}';
    const r = await delegate('ADD', 'fake-ipam', ctx(stdin));
    expect(r).toEqual({
      cniVersion: '0.4.0',
      ips: [{ address: '10.244.0.7/24', gateway: '10.244.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
    expect(readFileSync(join(dir, 'stdin.ADD'), 'utf8')).toBe(stdin);
    expect(readFileSync(join(dir, 'env.ADD'), 'utf8')).toBe('ADD c9 eth0\n');
    expect(await delegate('DEL', 'fake-ipam', ctx(stdin))).toBeUndefined();
    expect(readFileSync(join(dir, 'env.DEL'), 'utf8')).toBe('DEL c9 eth0\n');
  });

  it('passes the delegate’s error code through, saying which plugin failed', async () => {
    await expect(delegate('ADD', 'failing-ipam', ctx('{}'))).rejects.toMatchObject({
      name: 'CniError',
      cniCode: 11,
      message: 'plugin "failing-ipam": store locked',
      details: 'retry',
    });
  });

  it('reports an unparsable failure, a missing binary and a bad name as 999', async () => {
    await expect(delegate('ADD', 'garbage-ipam', ctx('{}'))).rejects.toMatchObject({
      cniCode: 999,
      details: 'segfault',
    });
    const missing = delegate('ADD', 'no-such-ipam', ctx('{}'));
    await expect(missing).rejects.toBeInstanceOf(CniError);
    await expect(missing).rejects.toMatchObject({ cniCode: 999 });
    await expect(delegate('ADD', '../fake-ipam', ctx('{}'))).rejects.toMatchObject({ cniCode: 999 });
  });
});
