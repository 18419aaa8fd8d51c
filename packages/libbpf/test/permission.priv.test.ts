import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requireRoot } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const child = fileURLToPath(new URL('./fixtures/unprivileged.ts', import.meta.url));

describe('permission failures (issue 17)', () => {
  it('a bpf(2) call refused for lack of privileges names CAP_BPF', (ctx) => {
    requireRoot(ctx);
    // With unprivileged BPF allowed (sysctl 0) nobody may create a hash map: the test would prove nothing.
    const sysctl = readFileSync('/proc/sys/kernel/unprivileged_bpf_disabled', 'utf8').trim();
    if (sysctl === '0')
      ctx.skip('kernel.unprivileged_bpf_disabled is 0: unprivileged map creation is allowed');
    const stdout = execFileSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        process.execPath,
        '--import',
        'tsx',
        child,
      ],
      { cwd: root, encoding: 'utf8' },
    );
    const got = JSON.parse(stdout) as { name: string; code: string; errnoName: string; message: string };
    expect(got).toMatchObject({ name: 'BpfError', code: 'PermissionDenied', errnoName: 'EPERM' });
    expect(got.message).toContain('needs CAP_BPF');
  });
});
