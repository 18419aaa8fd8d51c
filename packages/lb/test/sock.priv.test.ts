// Socket-level LB against the real kernel: a client process in a cgroup and namespace of its own reaches
// ClusterIPs over TCP and UDP, IPv4 and IPv6, through bpf/sock_lb.c loaded and attached by SocketLb.
import { be16, bytes, HashMap, pad, struct, u16, u64 } from '@datapath/bpf-maps';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SocketLb } from '../src/datapath.js';
import {
  backendIdCodec,
  backendValueCodec,
  LbError,
  serviceKeyCodec,
  serviceValueCodec,
} from '../src/index.js';
import { BACKENDS_V4, BACKENDS_V6, Client, Lab, PORT } from './lab.js';

interface Answer {
  answer?: string;
  peer?: string;
  from?: string;
  port?: number;
  error?: string;
}

const VIP4 = '10.96.0.10';
const VIP6 = 'fd00:96::10';
const svc = (
  name: string,
  protocol: 'TCP' | 'UDP',
  vip: string,
  backends: readonly string[],
  extra = {},
) => ({
  name,
  protocol,
  frontends: [{ address: vip, port: 80 }],
  backends: backends.map((address) => ({ address, port: PORT })),
  ...extra,
});

const root = process.getuid?.() === 0;
describe.skipIf(!root)('socket LB (cgroup connect/sendmsg/recvmsg/getpeername)', () => {
  const prefix = uniqueName();
  let lab: Lab;
  let lb: SocketLb;
  let client: Client;

  beforeAll(async () => {
    lab = await Lab.create(prefix);
    lb = await SocketLb.attach({ cgroupPath: lab.cgroupDir, tableSize: 251, serviceMapMax: 64 });
    client = lab.clientProcess();
  });
  // Each test starts from empty maps, whatever the one before left.
  afterEach(() => {
    for (const name of lb?.table.names() ?? []) lb.remove(name);
  });
  afterAll(async () => {
    await client?.close();
    lb?.close();
    await lab?.close();
    expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  });

  const dump = () => {
    const m = (name: string) => lb.collection.map(name).fd;
    using services = HashMap.fromFd(m('lb_services'), { key: serviceKeyCodec, value: serviceValueCodec });
    using backends = HashMap.fromFd(m('lb_backends'), { key: backendIdCodec, value: backendValueCodec });
    const sort = (e: [unknown, unknown][]) => e.map((x) => JSON.stringify(x)).sort();
    return { services: sort([...services.entries()]), backends: sort([...backends.entries()]) };
  };

  it('TCP and UDP, IPv4 and IPv6: every backend answers; getpeername and reply sources show the service', async (ctx) => {
    requireRoot(ctx);
    const b4 = BACKENDS_V4.slice(0, 3);
    const b6 = BACKENDS_V6.slice(0, 3);
    lb.upsert(svc('tcp4', 'TCP', VIP4, b4));
    lb.upsert(svc('udp4', 'UDP', VIP4, b4));
    lb.upsert(svc('tcp6', 'TCP', VIP6, b6, { selection: 'maglev' }));
    lb.upsert(svc('udp6', 'UDP', VIP6, b6));
    const cases: [string, Record<string, unknown>, string, readonly string[]][] = [
      ['tcp4', { op: 'tcp', host: VIP4, port: 80, n: 40 }, VIP4, b4],
      ['udp4', { op: 'udp', host: VIP4, port: 80, n: 40, connected: false }, VIP4, b4],
      ['udp4 connected', { op: 'udp', host: VIP4, port: 80, n: 20, connected: true }, VIP4, b4],
      ['tcp6 maglev', { op: 'tcp', host: VIP6, port: 80, n: 40 }, VIP6, b6],
      ['udp6', { op: 'udp', host: VIP6, port: 80, n: 40, connected: false }, VIP6, b6],
    ];
    for (const [what, cmd, vip, backends] of cases) {
      const got = await client.run<Answer[]>(cmd);
      expect(
        got.filter((a) => a.error),
        what,
      ).toEqual([]);
      expect(new Set(got.map((a) => a.answer)), what).toEqual(new Set(backends));
      for (const a of got) {
        if (cmd.op === 'tcp') expect(a.peer, `${what}: getpeername`).toBe(vip);
        else {
          expect(a.from, `${what}: reply source`).toBe(vip);
          expect(a.port).toBe(80);
          if (cmd.connected) expect(a.peer, `${what}: getpeername`).toBe(vip);
        }
      }
    }
    // a backend address reached directly is not rewritten
    const direct = await client.run<Answer[]>({ op: 'tcp', host: b4[1], port: PORT, n: 1 });
    expect(direct).toEqual([{ answer: b4[1], peer: b4[1] }]);
    for (const n of ['tcp4', 'udp4', 'tcp6', 'udp6']) lb.remove(n);
  });

  /** lb_sock_rev's entries (bpf/sock_lb.c: socket cookie + backend → the frontend it stands for). */
  const revEntries = () => {
    using rev = HashMap.fromFd(lb.collection.map('lb_sock_rev').fd, {
      key: struct({ cookie: u64, addr: bytes(16), port: be16, pad: pad(6) }),
      value: struct({ addr: bytes(16), port: be16, revNat: u16 }),
    });
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    return [...rev.entries()].map(([k, v]) => ({
      key: `${k.cookie}/${hex(k.addr)}/${k.port}`,
      backend: hex(k.addr),
      frontend: `${hex(v.addr)}:${v.port}`,
    }));
  };
  /** An IPv4 address as lb.h stores it (::ffff:a.b.c.d), in hex. */
  const stored = (a: string) =>
    `00000000000000000000ffff${Buffer.from(a.split('.').map(Number)).toString('hex')}`;
  /** Waits (up to 3 s) until `ok()` holds: a socket's release runs when its last reference goes. */
  const until = async (ok: () => boolean) => {
    for (const end = Date.now() + 3000; !ok() && Date.now() < end; )
      await new Promise((r) => setTimeout(r, 20));
  };

  it("lb_sock_rev: a connected socket's entry lives while it is open and goes when it closes (TCP v4/v6, connected UDP); unconnected UDP replies still show the service", async (ctx) => {
    requireRoot(ctx);
    const [be4] = BACKENDS_V4 as unknown as [string];
    const [be6] = BACKENDS_V6 as unknown as [string];
    lb.upsert(svc('rev-tcp4', 'TCP', VIP4, [be4]));
    lb.upsert(svc('rev-tcp6', 'TCP', VIP6, [be6]));
    lb.upsert(svc('rev-udp4', 'UDP', VIP4, [be4]));
    const before = new Set(revEntries().map((e) => e.key));
    const fresh = () => revEntries().filter((e) => !before.has(e.key));

    // open: the entry is there (getpeername reads it); closed: gone
    const held = await client.run<{ id: number; answer: string; peer: string }>({
      op: 'hold',
      host: VIP4,
      port: 80,
    });
    expect(held).toMatchObject({ answer: be4, peer: VIP4 });
    expect(fresh().map(({ backend, frontend }) => ({ backend, frontend }))).toEqual([
      { backend: stored(be4), frontend: `${stored(VIP4)}:80` },
    ]);
    await client.run({ op: 'release', id: held.id });
    await until(() => fresh().length === 0);
    expect(fresh()).toEqual([]);

    // many short connections leave nothing behind, over both families and connected UDP
    const tcp4 = await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 30 });
    const tcp6 = await client.run<Answer[]>({ op: 'tcp', host: VIP6, port: 80, n: 30 });
    const udpc = await client.run<Answer[]>({ op: 'udp', host: VIP4, port: 80, n: 10, connected: true });
    expect(tcp4.filter((a) => a.answer !== be4 || a.peer !== VIP4)).toEqual([]);
    expect(tcp6.filter((a) => a.answer !== be6 || a.peer !== VIP6)).toEqual([]);
    expect(udpc.filter((a) => a.answer !== be4 || a.from !== VIP4 || a.peer !== VIP4)).toEqual([]);
    await until(() => fresh().length === 0);
    expect(fresh()).toEqual([]);

    // unconnected UDP: recvmsg still shows the service as the source (its entry is not the release's)
    const udp = await client.run<Answer[]>({ op: 'udp', host: VIP4, port: 80, n: 5, connected: false });
    expect(udp).toEqual(Array.from({ length: 5 }, () => ({ answer: be4, from: VIP4, port: 80 })));
    for (const n of ['rev-tcp4', 'rev-tcp6', 'rev-udp4']) lb.remove(n);
  });

  it('random selection follows the weights (1:3), a weight-0 backend gets nothing', async (ctx) => {
    requireRoot(ctx);
    const [light, heavy, none] = BACKENDS_V4 as unknown as [string, string, string];
    lb.upsert({
      name: 'weighted',
      protocol: 'TCP',
      frontends: [{ address: VIP4, port: 80 }],
      backends: [
        { address: light, port: PORT, weight: 1 },
        { address: heavy, port: PORT, weight: 3 },
        { address: none, port: PORT, weight: 0 },
      ],
    });
    const n = 400;
    const got = await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n });
    expect(got.filter((a) => a.error)).toEqual([]);
    const count = (b: string) => got.filter((a) => a.answer === b).length;
    expect(count(none)).toBe(0);
    // expected 300 of 400 (sd 8.7): the bound is 7 sd wide each side, it cannot flake; uniform (200) fails it
    expect(count(heavy)).toBeGreaterThan(240);
    expect(count(heavy)).toBeLessThan(360);
    expect(count(light) + count(heavy)).toBe(n);
  });

  it('zero backends: connect and sendmsg fail ECONNREFUSED at once, nothing is sent', async (ctx) => {
    requireRoot(ctx);
    lb.upsert(svc('empty', 'TCP', VIP4, []));
    lb.upsert(svc('empty-udp', 'UDP', VIP6, []));
    expect(await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 2 })).toEqual([
      { error: 'ECONNREFUSED' },
      { error: 'ECONNREFUSED' },
    ]);
    expect(await client.run<Answer[]>({ op: 'udp', host: VIP6, port: 80, n: 1, connected: false })).toEqual([
      { error: 'ECONNREFUSED' },
    ]);
    // only terminating backends: the same
    lb.upsert({
      ...svc('empty', 'TCP', VIP4, []),
      backends: [{ address: BACKENDS_V4[0]!, port: PORT, state: 'terminating' }],
    });
    expect(await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 1 })).toEqual([
      { error: 'ECONNREFUSED' },
    ]);
    lb.remove('empty');
    lb.remove('empty-udp');
  });

  it('a terminating backend keeps its open connection and gets no new ones', async (ctx) => {
    requireRoot(ctx);
    const b = BACKENDS_V4.slice(0, 2);
    lb.upsert(svc('drain', 'TCP', VIP4, b));
    // hold connections until one lands on b[0]
    const held: { id: number; answer: string }[] = [];
    for (let i = 0; i < 40 && !held.some((h) => h.answer === b[0]); i++)
      held.push(await client.run<{ id: number; answer: string }>({ op: 'hold', host: VIP4, port: 80 }));
    const onFirst = held.find((h) => h.answer === b[0])!;
    expect(onFirst).toBeDefined();
    lb.upsert({
      ...svc('drain', 'TCP', VIP4, b),
      backends: b.map((address, i) => ({ address, port: PORT, state: i === 0 ? 'terminating' : 'active' })),
    });
    const fresh = await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 30 });
    expect(new Set(fresh.map((a) => a.answer))).toEqual(new Set([b[1]]));
    expect(await client.run<Answer>({ op: 'again', id: onFirst.id })).toEqual({ answer: b[0] });
    for (const h of held) await client.run({ op: 'release', id: h.id });
    lb.remove('drain');
  });

  it('backends added and removed under continuous load: no failed connection to a live backend', async (ctx) => {
    requireRoot(ctx);
    const all = BACKENDS_V4;
    lb.upsert(svc('churn', 'TCP', VIP4, all.slice(0, 2)));
    const load = client.run<{ ok: number; errors: string[]; answers: Record<string, number> }>({
      op: 'loop',
      host: VIP4,
      port: 80,
      ms: 3000,
    });
    const sets = [all.slice(0, 3), all.slice(1, 4), [all[3]!], all, all.slice(0, 1), all.slice(2, 4), all];
    for (let round = 0; round < 3; round++)
      for (const set of sets) {
        lb.upsert(svc('churn', 'TCP', VIP4, set, round === 1 ? { selection: 'maglev' } : {}));
        await new Promise((r) => setTimeout(r, 40));
      }
    const result = await load;
    expect(result.errors).toEqual([]);
    expect(result.ok).toBeGreaterThan(20);
    expect(Object.keys(result.answers).sort()).toEqual([...all].sort());
    lb.remove('churn');
  });

  it('session affinity: one client keeps its backend across connections', async (ctx) => {
    requireRoot(ctx);
    lb.upsert(svc('sticky', 'TCP', VIP4, BACKENDS_V4, { affinity: { timeoutSeconds: 60 } }));
    const got = await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 20 });
    expect(new Set(got.map((a) => a.answer)).size).toBe(1);
    // its backend turns terminating: the client moves, and sticks to its new one
    const first = got[0]!.answer!;
    lb.upsert({
      ...svc('sticky', 'TCP', VIP4, BACKENDS_V4, { affinity: { timeoutSeconds: 60 } }),
      backends: BACKENDS_V4.map((address) => ({
        address,
        port: PORT,
        state: address === first ? 'terminating' : 'active',
      })),
    });
    const after = await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 10 });
    const moved = new Set(after.map((a) => a.answer));
    expect(moved.size).toBe(1);
    expect(moved.has(first)).toBe(false);
    lb.remove('sticky');
  });

  it('session affinity (ClientIP, 1 s) through connect4/6 and sendmsg4/6: a client sticks per service, another client (netns) chooses on its own, the choice changes after the timeout', async (ctx) => {
    requireRoot(ctx);
    // 3 services per kind (60 entries: the map holds 64), four backends each: with affinity broken a
    // client's 4 connections to one service land on one backend with p = 1/64; with the timeout
    // ignored, or with two clients sharing one key, all 12 choices agree with p = 4^-12.
    const kinds = [
      { protocol: 'TCP', vip: VIP4, backends: BACKENDS_V4, cmd: { op: 'tcp' } }, // connect4
      { protocol: 'TCP', vip: VIP6, backends: BACKENDS_V6, cmd: { op: 'tcp' } }, // connect6
      { protocol: 'UDP', vip: VIP4, backends: BACKENDS_V4, cmd: { op: 'udp', connected: false } }, // sendmsg4
      { protocol: 'UDP', vip: VIP6, backends: BACKENDS_V6, cmd: { op: 'udp', connected: false } }, // sendmsg6
    ] as const;
    const ports = [81, 82, 83];
    for (const [k, kind] of kinds.entries())
      for (const port of ports)
        lb.upsert({
          name: `aff-${k}-${port}`,
          protocol: kind.protocol,
          frontends: [{ address: kind.vip, port }],
          backends: kind.backends.map((address) => ({ address, port: PORT })),
          affinity: { timeoutSeconds: 1 },
        });
    // a second client in the same cgroup but another network namespace (the backends' own: its
    // connections reach them over lo), so another netns cookie: another affinity key
    const other = new Client(lab.cgroupDir, lab.pods.path);
    try {
      const phase = async (c: Client) => {
        const chosen = new Map<string, string>();
        for (const [k, kind] of kinds.entries())
          for (const port of ports) {
            const got = await c.run<Answer[]>({ ...kind.cmd, host: kind.vip, port, n: 4 });
            const what = `${kind.protocol} [${kind.vip}]:${port}`;
            expect(
              got.filter((a) => a.error),
              what,
            ).toEqual([]);
            const answers = new Set(got.map((a) => a.answer));
            expect(answers.size, `${what}: ${[...answers].join(',')}`).toBe(1);
            chosen.set(`${k}:${port}`, got[0]!.answer!);
          }
        return chosen;
      };
      const differs = (a: Map<string, string>, b: Map<string, string>) =>
        [...a].some(([k, v]) => b.get(k) !== v);
      const first = await phase(client);
      const second = await phase(other);
      expect(differs(first, second), 'two clients chose alike everywhere').toBe(true);
      await new Promise((r) => setTimeout(r, 1500));
      const later = await phase(client);
      expect(differs(first, later), 'no choice changed after the timeout').toBe(true);
    } finally {
      await other.close();
    }
  });

  it('an external IP frontend is translated at connect like a ClusterIP', async (ctx) => {
    requireRoot(ctx);
    lb.upsert({
      name: 'ext',
      protocol: 'TCP',
      frontends: [
        { kind: 'ClusterIP', address: VIP4, port: 80 },
        { kind: 'ExternalIP', address: '198.18.7.7', port: 80 },
      ],
      backends: BACKENDS_V4.slice(0, 2).map((address) => ({ address, port: PORT })),
    });
    const got = await client.run<Answer[]>({ op: 'tcp', host: '198.18.7.7', port: 80, n: 20 });
    expect(got.filter((a) => a.error)).toEqual([]);
    expect(new Set(got.map((a) => a.answer))).toEqual(new Set(BACKENDS_V4.slice(0, 2)));
    for (const a of got) expect(a.peer).toBe('198.18.7.7');
  });

  it('bad input and a full map leave nothing half-written', async (ctx) => {
    requireRoot(ctx);
    lb.upsert(svc('keep', 'TCP', VIP4, BACKENDS_V4.slice(0, 2)));
    const before = dump();
    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof LbError ? e.reason : (e as { code?: string }).code;
      }
      return 'no error';
    };
    expect(reason(() => lb.upsert(svc('dup', 'TCP', VIP4, BACKENDS_V4)))).toBe('DuplicateFrontend');
    expect(reason(() => lb.upsert({ ...svc('keep', 'TCP', VIP4, BACKENDS_V4), protocol: 'SCTP' }))).toBe(
      'InvalidProtocol',
    );
    expect(
      reason(() => lb.upsert({ ...svc('keep', 'TCP', VIP4, []), frontends: [{ address: VIP4, port: 0 }] })),
    ).toBe('InvalidPort');
    expect(dump()).toEqual(before);
    // more backends than the per-service slot limit (4096 by default): refused before any write
    const tooMany = Array.from({ length: 4097 }, (_, i) => `10.245.${i >> 8}.${i & 255}`);
    expect(reason(() => lb.upsert(svc('keep', 'TCP', VIP4, tooMany)))).toBe('TooManyBackends');
    expect(
      reason(() =>
        lb.upsert(
          svc(
            'other',
            'TCP',
            VIP6,
            tooMany.map((a) => `fd00:5::${a.replaceAll('.', ':')}`),
          ),
        ),
      ),
    ).toBe('TooManyBackends');
    expect(dump()).toEqual(before);
    // the service map holds 64 entries: 70 backends fit the model but not the map; the writer undoes
    const many = Array.from({ length: 70 }, (_, i) => `10.244.2.${i + 1}`);
    expect(reason(() => lb.upsert(svc('keep', 'TCP', VIP4, many)))).toBe('Exhausted');
    expect(dump()).toEqual(before);
    // and the table still describes the maps: the old service still answers
    const got = await client.run<Answer[]>({ op: 'tcp', host: VIP4, port: 80, n: 10 });
    expect(got.every((a) => BACKENDS_V4.slice(0, 2).includes(a.answer!))).toBe(true);
    lb.remove('keep');
    expect(dump()).toEqual({ services: [], backends: [] });
  });
});
