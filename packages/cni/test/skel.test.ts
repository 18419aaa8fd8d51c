import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatapathError } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import {
  type AddArgs,
  ALL_VERSIONS,
  type CheckArgs,
  CniError,
  type CniPlugin,
  type DelArgs,
  type GcArgs,
  validateResultShape,
} from '../src/index.js';
import { invoke } from './fake-io.js';

// /proc/self/ns/net is a real nsfs path; CNI_NETNS_OVERRIDE=1 lets it through the own-netns check, so the
// success paths can run without root. The refusal without the override is tested below.
const OWN = '/proc/self/ns/net';
const env = (command: string, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'ctr-1',
  CNI_NETNS: OWN,
  CNI_NETNS_OVERRIDE: '1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  ...extra,
});
const conf = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: 'pods',
  type: 'test',
  ...extra,
});

function recorder() {
  const calls: { cmd: string; args: unknown }[] = [];
  const plugin: CniPlugin = {
    add: (a: AddArgs<{}>) => {
      calls.push({ cmd: 'ADD', args: a });
      a.log('adding');
      return {
        interfaces: [
          { name: 'lxc1', mac: '02:00:00:00:00:01', mtu: 1500 },
          { name: a.ifname, sandbox: a.netns },
        ],
        ips: [{ address: '10.244.0.2/32', gateway: '10.244.0.1', interface: 1 }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.244.0.1', mtu: 1400 }],
      };
    },
    del: (a: DelArgs<{}>) => {
      calls.push({ cmd: 'DEL', args: a });
    },
    check: (a: CheckArgs<{}>) => {
      calls.push({ cmd: 'CHECK', args: a });
    },
    gc: (a: GcArgs<{}>) => {
      calls.push({ cmd: 'GC', args: a });
    },
  };
  return { plugin, calls };
}

function expectError(out: { status: number; json: unknown }, code: number, cniVersion = '1.1.0') {
  expect(out.status).toBe(1);
  expect(out.json).toMatchObject({ cniVersion, code });
  expect(typeof (out.json as { msg: unknown }).msg).toBe('string');
}

describe('runPlugin: environment rules', () => {
  it('prints the about text and versions on stderr and exits 0 without CNI_COMMAND', async () => {
    const { plugin, calls } = recorder();
    const out = await invoke({ ...plugin, about: 'CNI plugin test v1' }, {}, '');
    expect(out.status).toBe(0);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(
      `CNI plugin test v1\nCNI protocol versions supported: ${ALL_VERSIONS.join(', ')}\n`,
    );
    expect(calls).toHaveLength(0);
  });

  it('lists every missing variable with code 4 and calls nothing', async () => {
    const { plugin, calls } = recorder();
    const out = await invoke(plugin, { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }, conf());
    expectError(out, 4);
    expect((out.json as { msg: string }).msg).toBe(
      'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing',
    );
    expect(calls).toHaveLength(0);
  });

  it('rejects an unknown command, a bad container id and a bad interface name with code 4', async () => {
    const { plugin, calls } = recorder();
    expectError(await invoke(plugin, env('BOGUS'), conf()), 4);
    expectError(await invoke(plugin, env('ADD', { CNI_CONTAINERID: '-x' }), conf()), 4);
    expectError(await invoke(plugin, env('ADD', { CNI_IFNAME: 'sixteen-chars-xx' }), conf()), 4);
    expectError(await invoke(plugin, env('DEL', { CNI_IFNAME: 'a:b' }), conf()), 4);
    expect(calls).toHaveLength(0);
  });

  it('rejects unknown CNI_ARGS unless IgnoreUnknown, and passes declared ones', async () => {
    const { plugin, calls } = recorder();
    expectError(await invoke(plugin, env('ADD', { CNI_ARGS: 'FOO=bar' }), conf()), 4);
    expect(calls).toHaveLength(0);
    const p2 = { ...plugin, cniArgs: ['K8S_POD_NAME'] };
    const out = await invoke(
      p2,
      env('ADD', { CNI_ARGS: 'IgnoreUnknown=1;FOO=bar;K8S_POD_NAME=web' }),
      conf(),
    );
    expect(out.status).toBe(0);
    expect((calls[0]!.args as AddArgs<{}>).args).toEqual({ K8S_POD_NAME: 'web' });
  });
});

describe('runPlugin: config rules', () => {
  it('gives 6 for stdin that is not JSON or not an object', async () => {
    const { plugin } = recorder();
    expectError(await invoke(plugin, env('ADD'), '{"cniVersion":'), 6);
    expectError(await invoke(plugin, env('ADD'), '[1]'), 6);
    expectError(await invoke(plugin, env('ADD'), conf({ cniVersion: 3 })), 6);
  });

  it('gives 7 for a missing or invalid network name, 7 for a bad field', async () => {
    const { plugin } = recorder();
    expectError(await invoke(plugin, env('ADD'), { cniVersion: '1.1.0', type: 't' }), 7);
    expectError(await invoke(plugin, env('ADD'), conf({ name: 'a b' })), 7);
    const out = await invoke(plugin, env('ADD'), conf({ ipam: { subnet: 'x' } }));
    expectError(out, 7);
    expect((out.json as { details: string }).details).toContain('ipam.type');
    expectError(await invoke(plugin, env('ADD'), conf({ runtimeConfig: { ips: ['10.0.0.1'] } })), 7);
  });

  it('validates the plugin’s own schema and hands the typed config over, unknown keys kept', async () => {
    const seen: unknown[] = [];
    const plugin: CniPlugin<{ mtu: number }> = {
      config: z.looseObject({ mtu: z.int().check(z.minimum(576)) }),
      add: (a) => {
        seen.push(a.config);
        return {};
      },
      del: () => {},
      check: () => {},
    };
    expectError(await invoke(plugin, env('ADD'), conf({ mtu: 100 })), 7);
    const out = await invoke(plugin, env('ADD'), conf({ mtu: 1400, extra: { a: 1 } }));
    expect(out.status).toBe(0);
    expect(seen[0]).toMatchObject({ mtu: 1400, extra: { a: 1 }, name: 'pods' });
  });

  it('gives 1 with libcni details for an unsupported version, in the config’s version', async () => {
    const { plugin, calls } = recorder();
    const out = await invoke({ ...plugin, versions: ['0.4.0', '1.0.0'] }, env('ADD'), conf());
    expectError(out, 1);
    expect(out.json).toEqual({
      cniVersion: '1.1.0',
      code: 1,
      msg: 'incompatible CNI versions',
      details: 'config is "1.1.0", plugin supports ["0.4.0" "1.0.0"]',
    });
    expect(calls).toHaveLength(0);
  });

  it('reads a missing cniVersion as 0.1.0', async () => {
    const { plugin } = recorder();
    const out = await invoke(plugin, env('ADD'), { name: 'pods', type: 't' });
    expect(out.status).toBe(0);
    expect(out.json).toMatchObject({ cniVersion: '0.1.0', ip4: { ip: '10.244.0.2/32' } });
  });

  it('refuses CHECK before 0.4.0 and GC/STATUS before 1.1.0 with code 1', async () => {
    const { plugin, calls } = recorder();
    const prev = { cniVersion: '0.3.1', ips: [{ version: '4', address: '10.0.0.2/24' }] };
    const out = await invoke(plugin, env('CHECK'), conf({ cniVersion: '0.3.1', prevResult: prev }));
    expectError(out, 1, '0.3.1');
    expect((out.json as { msg: string }).msg).toBe('config version does not allow CHECK');
    expectError(
      await invoke(plugin, env('GC'), conf({ cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] })),
      1,
      '1.0.0',
    );
    expectError(await invoke(plugin, env('STATUS'), conf({ cniVersion: '1.0.0' })), 1, '1.0.0');
    expect(calls).toHaveLength(0);
  });
});

describe('runPlugin: commands', () => {
  it('writes the ADD result in every version, each a valid shape of that version', async () => {
    const { plugin } = recorder();
    for (const v of ALL_VERSIONS) {
      const out = await invoke(plugin, env('ADD'), conf({ cniVersion: v }));
      expect(out.status, out.stdout).toBe(0);
      expect(out.stderr).toBe('adding\n');
      expect(out.stdout.endsWith('\n')).toBe(true);
      validateResultShape(out.json, v);
      expect((out.json as { cniVersion: string }).cniVersion).toBe(v);
    }
  });

  it('answers VERSION without config checks, echoing the requested version', async () => {
    const { plugin } = recorder();
    let out = await invoke(plugin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(out.json).toEqual({ cniVersion: '0.4.0', supportedVersions: [...ALL_VERSIONS] });
    out = await invoke({ ...plugin, versions: ['1.0.0'] }, { CNI_COMMAND: 'VERSION' }, '');
    expect(out.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['1.0.0'] });
  });

  it('parses prevResult in the config’s version and hands it over in the newest shape', async () => {
    const { plugin, calls } = recorder();
    const prev = {
      cniVersion: '0.4.0',
      ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1' }],
    };
    const out = await invoke(plugin, env('ADD'), conf({ cniVersion: '0.4.0', prevResult: prev }));
    expect(out.status).toBe(0);
    expect((calls[0]!.args as AddArgs<{}>).prevResult).toEqual({
      cniVersion: '0.4.0',
      ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }],
    });
    expectError(await invoke(plugin, env('ADD'), conf({ prevResult: { ips: 'x' } })), 7);
  });

  it('requires a prevResult for CHECK', async () => {
    const { plugin, calls } = recorder();
    expectError(await invoke(plugin, env('CHECK'), conf()), 7);
    const ok = await invoke(plugin, env('CHECK'), conf({ prevResult: { cniVersion: '1.1.0', ips: [] } }));
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('');
    expect(calls.map((c) => c.cmd)).toEqual(['CHECK']);
  });

  it('runs DEL with a gone netns as netns undefined, and with no netns at all', async () => {
    const { plugin, calls } = recorder();
    expect(
      (await invoke(plugin, env('DEL', { CNI_NETNS: '/run/netns/does-not-exist-xyz' }), conf())).status,
    ).toBe(0);
    expect((await invoke(plugin, env('DEL', { CNI_NETNS: '' }), conf())).status).toBe(0);
    expect(calls.map((c) => (c.args as DelArgs<{}>).netns)).toEqual([undefined, undefined]);
  });

  it('runs DEL with a stale CNI_NETNS (a regular file or a directory) as netns undefined', async () => {
    // What a vanished netns bind mount leaves behind: DEL must still run, so the plugin releases its IPs.
    const { plugin, calls } = recorder();
    const dir = mkdtempSync(join(tmpdir(), 'cni-stale-'));
    try {
      writeFileSync(join(dir, 'file'), '');
      expect((await invoke(plugin, env('DEL', { CNI_NETNS: join(dir, 'file') }), conf())).status).toBe(0);
      expect((await invoke(plugin, env('DEL', { CNI_NETNS: dir }), conf())).status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(calls.map((c) => [c.cmd, (c.args as DelArgs<{}>).netns])).toEqual([
      ['DEL', undefined],
      ['DEL', undefined],
    ]);
    // ADD and CHECK still refuse such a path.
    expectError(await invoke(plugin, env('ADD', { CNI_NETNS: '/etc' }), conf()), 8);
  });

  it('refuses ADD in the plugin’s own netns or a non-nsfs path with code 8, before calling ADD', async () => {
    const { plugin, calls } = recorder();
    expectError(await invoke(plugin, env('ADD', { CNI_NETNS_OVERRIDE: '' }), conf()), 8);
    expectError(await invoke(plugin, env('ADD', { CNI_NETNS: '/etc/hostname' }), conf()), 8);
    expectError(await invoke(plugin, env('ADD', { CNI_NETNS: '/run/netns/does-not-exist-xyz' }), conf()), 8);
    expectError(await invoke(plugin, env('DEL', { CNI_NETNS_OVERRIDE: '' }), conf()), 8);
    expect(calls).toHaveLength(0);
  });

  it('passes GC attachments under either key, and needs one of them', async () => {
    const { plugin, calls } = recorder();
    const list = [{ containerID: 'c1', ifname: 'eth0' }];
    expect((await invoke(plugin, env('GC'), conf({ 'cni.dev/valid-attachments': list }))).status).toBe(0);
    expect((await invoke(plugin, env('GC'), conf({ 'cni.dev/attachments': list }))).status).toBe(0);
    expect(calls.map((c) => (c.args as GcArgs<{}>).validAttachments)).toEqual([list, list]);
    expectError(await invoke(plugin, env('GC'), conf()), 7);
    expectError(
      await invoke(plugin, env('GC'), conf({ 'cni.dev/valid-attachments': [{ containerID: 1 }] })),
      7,
    );
  });

  it('answers STATUS and GC with success when the plugin has no handler, and passes a STATUS error', async () => {
    const { plugin } = recorder();
    const { gc: _gc, ...noGc } = plugin;
    expect(await invoke(noGc, env('GC'), conf({ 'cni.dev/valid-attachments': [] }))).toMatchObject({
      status: 0,
      stdout: '',
    });
    expect(await invoke(plugin, env('STATUS'), conf())).toMatchObject({ status: 0, stdout: '' });
    const down = {
      ...plugin,
      status: () => {
        throw new CniError(50, 'agent down');
      },
    };
    const out = await invoke(down, env('STATUS'), conf());
    expect(out.json).toEqual({ cniVersion: '1.1.0', code: 50, msg: 'agent down' });
  });

  it('translates handler exceptions at the boundary and logs internal ones on stderr only', async () => {
    const fail = (err: unknown): CniPlugin => ({
      add: () => {
        throw err;
      },
      del: () => {},
      check: () => {},
    });
    const full = new DatapathError('Exhausted', 'range 10.244.0.0/24 is full', { reason: 'Full' });
    expect((await invoke(fail(full), env('ADD'), conf())).json).toEqual({
      cniVersion: '1.1.0',
      code: 11,
      msg: 'range 10.244.0.0/24 is full',
      details: 'DatapathError Exhausted (Full)',
    });
    const out = await invoke(fail(new TypeError('oops')), env('ADD'), conf({ cniVersion: '0.4.0' }));
    expect(out.json).toEqual({ cniVersion: '0.4.0', code: 999, msg: 'oops' });
    expect(out.stderr).toContain('TypeError: oops');
  });

  it('refuses to print a result that is not a valid shape (999)', async () => {
    const bad: CniPlugin = { add: () => ({ ips: [{ address: 'nope' }] }), del: () => {}, check: () => {} };
    const out = await invoke(bad, env('ADD'), conf());
    expectError(out, 999);
    expect((out.json as { msg: string }).msg).toBe('plugin produced an invalid result');
  });
});

describe('the README’s minimal plugin', () => {
  it('runs as a real process and answers VERSION and a bad environment per the spec', async () => {
    const { execFileSync, spawnSync } = await import('node:child_process');
    const file = new URL('./fixtures/minimal-plugin.ts', import.meta.url).pathname;
    const tsx = new URL('../../../node_modules/tsx/dist/esm/index.mjs', import.meta.url).pathname;
    const out = execFileSync(process.execPath, ['--import', tsx, file], {
      env: { CNI_COMMAND: 'VERSION' },
      input: '{"cniVersion":"1.0.0"}',
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual({ cniVersion: '1.0.0', supportedVersions: [...ALL_VERSIONS] });
    const bad = spawnSync(process.execPath, ['--import', tsx, file], {
      env: { CNI_COMMAND: 'ADD' },
      input: '{}',
      encoding: 'utf8',
    });
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 4 });
  });
});
