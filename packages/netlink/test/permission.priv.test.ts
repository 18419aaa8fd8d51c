import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { requireRoot, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const child = fileURLToPath(new URL('./fixtures/unprivileged.ts', import.meta.url));

describe('permission failures (issue 17)', () => {
  it('name the capability: CAP_NET_ADMIN for a netlink request, CAP_SYS_ADMIN for setns', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (inside, other) => {
      // The child runs in `inside` as nobody with no capabilities at all.
      const stdout = execFileSync(
        'ip',
        [
          'netns',
          'exec',
          inside.name,
          'setpriv',
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          '--inh-caps=-all',
          '--bounding-set=-all',
          process.execPath,
          '--import',
          'tsx',
          child,
          other.path,
        ],
        { cwd: root, encoding: 'utf8' },
      );
      const got = JSON.parse(stdout) as Record<
        string,
        { name: string; code: string; errnoName: string; message: string }
      >;
      expect(got.linkNew).toMatchObject({
        name: 'NetlinkError',
        code: 'PermissionDenied',
        errnoName: 'EPERM',
      });
      expect(got.linkNew!.message).toContain('needs CAP_NET_ADMIN');
      expect(got.setns).toMatchObject({ name: 'NetlinkError', code: 'PermissionDenied', errnoName: 'EPERM' });
      expect(got.setns!.message).toContain('needs CAP_SYS_ADMIN');
    });
  });
});
