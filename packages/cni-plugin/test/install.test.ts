// The installer (src/install.ts) and the npm bin, without root: a user's own runPlugin plugin bundled and
// installed behind the same launcher as datapath-cni, run the way a runtime runs it (exec, an empty
// environment: no PATH); the launcher names an absolute Node; an older Node is refused loudly by the
// installer, the bin and the loader (with the system Node when it is older than 22, and with a stand-in
// that reports v20 so the check runs everywhere).
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePlugin, InstallError, installPlugin } from '../src/index.js';

const PKG = resolve(fileURLToPath(new URL('..', import.meta.url)));
const work = mkdtempSync(join(tmpdir(), 'cni-install-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// The workspace packages from their sources (a user's project resolves them from node_modules).
const alias = { '@datapath/cni': resolve(PKG, '../cni/src/index.ts') };
let bundle: string;
beforeAll(async () => {
  bundle = await bundlePlugin({
    entry: join(PKG, 'test/fixtures/own-plugin.ts'),
    outFile: join(work, 'own.cjs'),
    alias,
  });
}, 60_000);

const run = (file: string, env: Record<string, string>, stdin = '') => {
  const r = spawnSync(file, [], { env, input: stdin, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
const addEnv = (ifname = 'eth0') => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_NETNS_OVERRIDE: '1',
  CNI_IFNAME: ifname,
  CNI_PATH: '/nonexistent',
});
const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'mine', type: 'own-plugin' });

/** A stand-in "node" that reports an old version, as `node -p process.version` would. */
function oldNode(): string {
  const f = join(work, 'node20');
  writeFileSync(f, '#!/bin/sh\necho v20.11.1\n');
  chmodSync(f, 0o755);
  return f;
}
const systemNode = spawnSync('/usr/bin/node', ['-p', 'process.versions.node'], { encoding: 'utf8' });
const systemNodeIsOld = systemNode.status === 0 && Number(systemNode.stdout.split('.')[0]) < 22;

describe('installPlugin: a user plugin behind the datapath-cni launcher', () => {
  it('installs launcher, bundle and loader; the launcher execs this Node by absolute path', () => {
    const bin = join(work, 'bin');
    const inst = installPlugin({ binDir: bin, name: 'own-plugin', bundle });
    expect(inst.launcher).toBe(join(bin, 'own-plugin'));
    expect(inst.nodeVersion).toBe(process.version);
    const launcher = readFileSync(inst.launcher, 'utf8');
    expect(launcher.startsWith('#!/bin/sh\n')).toBe(true);
    expect(launcher).toContain(`exec '${process.execPath}' '${join(bin, 'own-plugin.d', 'run.cjs')}' "$@"`);
    expect(launcher).not.toContain('/usr/bin/env');
    expect(readdirSync(inst.supportDir).sort()).toEqual(['own-plugin.cjs', 'run.cjs']); // no koffi: not used
  });

  it('answers ADD with an empty environment (no PATH) and writes its code cache once', () => {
    const bin = join(work, 'bin');
    const r = run(join(bin, 'own-plugin'), addEnv(), conf);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0', ips: [{ address: '10.244.9.9/24' }] });
    expect(existsSync(join(bin, 'own-plugin.d', 'own-plugin.cjs.ADD.v8cache'))).toBe(true);
    const e = run(join(bin, 'own-plugin'), addEnv('fail0'), conf);
    expect(e.status).toBe(1);
    expect(JSON.parse(e.stdout)).toMatchObject({ code: 11, msg: 'asked to fail' });
  });

  it('reinstalling drops stale code caches; a bundle using netlink gets koffi’s addon', () => {
    const bin = join(work, 'bin');
    const inst = installPlugin({ binDir: bin, name: 'own-plugin', bundle });
    expect(readdirSync(inst.supportDir).filter((f) => f.endsWith('.v8cache'))).toEqual([]);
    const withKoffi = join(work, 'k.cjs');
    writeFileSync(withKoffi, `${readFileSync(bundle, 'utf8')}\n// koffi.node\n`);
    const k = installPlugin({ binDir: bin, name: 'k-plugin', bundle: withKoffi });
    expect(readdirSync(k.supportDir)).toContain('koffi.node');
  });

  it('refuses bad names, relative or missing Nodes and bundles, with a typed error', () => {
    const bin = join(work, 'bad');
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(InstallError);
        return (err as InstallError).code;
      }
      return 'no error';
    };
    expect(code(() => installPlugin({ binDir: bin, name: '../x', bundle }))).toBe('InvalidArgument');
    expect(code(() => installPlugin({ binDir: bin, name: 'x', bundle, node: 'node' }))).toBe(
      'InvalidArgument',
    );
    expect(code(() => installPlugin({ binDir: bin, name: 'x', bundle, node: '/nonexistent/node' }))).toBe(
      'NotFound',
    );
    expect(code(() => installPlugin({ binDir: bin, name: 'x', bundle: join(work, 'none.cjs') }))).toBe(
      'NotFound',
    );
    expect(existsSync(bin)).toBe(false); // nothing written
  });

  it('refuses a Node older than 22 (a stand-in reporting v20)', () => {
    let err: unknown;
    try {
      installPlugin({ binDir: join(work, 'old'), name: 'x', bundle, node: oldNode() });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InstallError);
    expect((err as InstallError).code).toBe('NotSupported');
    expect((err as Error).message).toMatch(/needs Node >= 22; .*node20 is v20\.11\.1/);
  });

  it.skipIf(!systemNodeIsOld)(
    'the system Node (< 22) is refused by the bin and, as a CNI error, by the loader',
    () => {
      const r = spawnSync(
        '/usr/bin/node',
        [join(PKG, 'bin/datapath-cni.cjs'), 'install', join(work, 'old-bin')],
        {
          encoding: 'utf8',
        },
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`needs Node >= 22; this is v${systemNode.stdout.trim()}`);
      expect(existsSync(join(work, 'old-bin'))).toBe(false);
      const loader = spawnSync('/usr/bin/node', [join(work, 'bin', 'own-plugin.d', 'run.cjs')], {
        env: addEnv(),
        input: conf,
        encoding: 'utf8',
      });
      expect(loader.status).toBe(1);
      expect(JSON.parse(loader.stdout)).toMatchObject({ code: 999 });
      expect(JSON.parse(loader.stdout).msg).toContain('needs Node >= 22');
    },
  );

  it('the npm bin, exec’d by a runtime by mistake, answers a CNI error that says how to install', () => {
    const r = spawnSync(process.execPath, [join(PKG, 'bin/datapath-cni.cjs')], {
      env: { CNI_COMMAND: 'ADD' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 999 });
    expect(JSON.parse(r.stdout).details).toContain('install');
  });
});
