// datapath-cni driven by a real CNI client: cnitool, containernetworking/cni's command-line front end of
// libcni (the library container runtimes call plugins through), built by scripts/cnitool.sh (run by
// scripts/setup.sh). libcni loads a .conflist and runs the chain — datapath-cni, then the Debian reference
// plugins `tuning` (a sysctl in the pod) and `bandwidth` (tbf on the host veth, an ifb device for the
// pod's egress) — injects name/cniVersion and prevResult, caches each ADD result under
// /var/lib/cni/results and feeds it back to CHECK and DEL. ADD/CHECK/DEL/DEL for cniVersion 1.0.0, 0.4.0
// and 0.3.1 (libcni has no CHECK below 0.4.0). cnitool runs inside a private "host" namespace made by the
// test; the libcni cache files it writes are removed afterwards.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipJson, requireRoot, type TestNetns, uniqueName, withNetns } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Installed, installPlugin } from './harness.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const CNITOOL = join(ROOT, '.toolchain/bin/cnitool');
const DEBIAN_PLUGINS = '/usr/lib/cni';
const CACHE = '/var/lib/cni';

let inst: Installed;
let hadCache = true;
beforeAll(() => {
  if (process.getuid?.() !== 0) return;
  hadCache = existsSync(join(CACHE, 'results'));
  inst = installPlugin();
}, 120_000);
afterAll(() => {
  inst?.remove();
  // libcni made /var/lib/cni/results for us: leave the machine as it was.
  if (!hadCache) {
    for (const d of [join(CACHE, 'results'), CACHE]) {
      try {
        rmdirSync(d);
      } catch {
        // not empty (someone else's cache) or already gone
      }
    }
  }
});

/** What cnitool names the container: "cnitool-" and the first 10 bytes of sha512(netns path), in hex. */
const containerIdOf = (netns: string) =>
  `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;

interface Step {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cnitool(host: TestNetns, netconf: string, command: string, net: string, pod: TestNetns): Step {
  // As a runtime started by systemd: only PATH and cnitool's own variables.
  const r = spawnSync('nsenter', [`--net=${host.path}`, CNITOOL, command, net, pod.path], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NETCONFPATH: netconf,
      CNI_PATH: `${inst.dir}:${DEBIAN_PLUGINS}`,
      CNI_IFNAME: 'eth0',
    },
    encoding: 'utf8',
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const ok = (s: Step) => {
  expect(s.status, `${s.stdout}\n${s.stderr}`).toBe(0);
  return s.stdout;
};

const links = (ns: string) => ipJson<{ ifname: string }[]>(['link', 'show'], ns).map((l) => l.ifname);
const sysctlIn = (ns: TestNetns, key: string) => {
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'cat', `/proc/sys/${key.replaceAll('.', '/')}`], {
    encoding: 'utf8',
  });
  return r.stdout.trim();
};
const qdiscs = (ns: string, dev: string) =>
  (
    JSON.parse(
      spawnSync('tc', ['-n', ns, '-j', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' }).stdout,
    ) as {
      kind: string;
    }[]
  ).map((q) => q.kind);

describe('datapath-cni through cnitool (libcni), chained with tuning and bandwidth', () => {
  it.for(['1.0.0', '0.4.0', '0.3.1'])(
    'cniVersion %s: ADD, CHECK (from 0.4.0), DEL, DEL',
    async (cniVersion, ctx) => {
      requireRoot(ctx);
      if (!existsSync(CNITOOL))
        throw new Error(`${CNITOOL} is missing: run scripts/setup.sh (it runs scripts/cnitool.sh)`);
      for (const p of ['tuning', 'bandwidth']) {
        if (!existsSync(join(DEBIAN_PLUGINS, p)))
          throw new Error(
            `${DEBIAN_PLUGINS}/${p} is missing: run scripts/setup.sh (Debian containernetworking-plugins)`,
          );
      }
      await withNetns(2, async (host, pod) => {
        const work = mkdtempSync(join(tmpdir(), 'cni-cnitool-'));
        const net = uniqueName();
        const cacheFile = join(CACHE, 'results', `${net}-${containerIdOf(pod.path)}-eth0`);
        try {
          mkdirSync(join(work, 'net.d'));
          writeFileSync(
            join(work, 'net.d', `10-${net}.conflist`),
            JSON.stringify({
              cniVersion,
              name: net,
              plugins: [
                {
                  type: 'datapath-cni',
                  mode: 'ptp',
                  mtu: 1500,
                  ipam: {
                    type: 'host-local',
                    ranges: [[{ subnet: '10.244.7.0/24' }]],
                    routes: [{ dst: '0.0.0.0/0' }],
                    dataDir: join(work, 'ipam'),
                  },
                },
                { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.accept_redirects': '0' } },
                // bytes per second / bits: tbf on the host veth (pod ingress), ifb + tbf for the pod's egress
                {
                  type: 'bandwidth',
                  ingressRate: 8_000_000,
                  ingressBurst: 160_000,
                  egressRate: 8_000_000,
                  egressBurst: 160_000,
                },
              ],
            }),
          );
          const netconf = join(work, 'net.d');
          const reserved = () => {
            try {
              return readdirSync(join(work, 'ipam', net)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
            } catch {
              return [];
            }
          };

          // ADD: the chain's result, in the config's version, cached by libcni.
          const result = JSON.parse(ok(cnitool(host, netconf, 'add', net, pod))) as {
            cniVersion: string;
            interfaces: { name: string; sandbox?: string }[];
            ips: { address: string; version?: string }[];
          };
          expect(result.cniVersion).toBe(cniVersion);
          const address = result.ips[0]!.address;
          expect(address).toMatch(/^10\.244\.7\.\d+\/24$/);
          if (cniVersion === '0.3.1') expect(result.ips[0]!.version).toBe('4');
          const hostVeth = result.interfaces.find((i) => i.sandbox === undefined)!.name;
          expect(links(host.name)).toContain(hostVeth);
          const podAddrs = ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
            ['addr', 'show', 'dev', 'eth0'],
            pod.name,
          )[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
          expect(podAddrs).toContain(address);
          expect(reserved()).toEqual([address.split('/')[0]]);
          // tuning ran after us, in the pod; bandwidth shaped the host veth and made its ifb device.
          expect(sysctlIn(pod, 'net.ipv4.conf.eth0.accept_redirects')).toBe('0');
          expect(qdiscs(host.name, hostVeth)).toContain('tbf');
          const ifbs = ipJson<{ ifname: string; linkinfo?: { info_kind?: string } }[]>(
            ['-d', 'link', 'show'],
            host.name,
          )
            .filter((l) => l.linkinfo?.info_kind === 'ifb')
            .map((l) => l.ifname);
          expect(ifbs).toHaveLength(1);
          const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as {
            kind: string;
            containerId: string;
            result: unknown;
          };
          expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: containerIdOf(pod.path) });

          // CHECK with the cached prevResult (libcni has none below 0.4.0).
          if (cniVersion !== '0.3.1') ok(cnitool(host, netconf, 'check', net, pod));

          // DEL: the chain in reverse, prevResult from the cache; everything goes, the cache file too.
          ok(cnitool(host, netconf, 'del', net, pod));
          expect(links(pod.name)).toEqual(['lo']);
          expect(links(host.name)).toEqual(['lo']);
          expect(reserved()).toEqual([]);
          expect(existsSync(cacheFile)).toBe(false);
          // A second DEL (no cache, so no prevResult) succeeds and changes nothing.
          ok(cnitool(host, netconf, 'del', net, pod));
          expect(links(host.name)).toEqual(['lo']);
        } finally {
          rmSync(cacheFile, { force: true });
          rmSync(work, { recursive: true, force: true });
        }
      });
    },
  );
});
