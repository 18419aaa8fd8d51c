// Test helper: a small command server run inside a test network namespace
// (`nsenter --net=/run/netns/X node --import tsx test/helpers/agent.ts`). It drives the loader from that
// namespace, where device names and ifindexes of the test veths resolve, and answers JSON lines.
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import {
  attach,
  type Collection,
  type Link,
  load,
  openObject,
  openPinnedLink,
  query,
  tcAttach,
  tcxAttach,
  xdpAttach,
} from '../../src/index.js';

const collections = new Map<string, Collection>();
const links = new Map<string, Link>();
const sockets = new Map<number, { socket: Socket; count: number }>();
let next = 0;

type Args = Record<string, unknown>;
const str = (a: Args, k: string) => a[k] as string;

function program(a: Args) {
  const coll = collections.get(str(a, 'coll'));
  if (coll === undefined) throw new Error(`no collection ${str(a, 'coll')}`);
  return coll.program(str(a, 'program'));
}

function link(a: Args): Link {
  const l = links.get(str(a, 'link'));
  if (l === undefined) throw new Error(`no link ${str(a, 'link')}`);
  return l;
}

function keep(l: Link): { link: string; info: unknown } {
  const id = `l${next++}`;
  links.set(id, l);
  return { link: id, info: l.info() };
}

const ops: Record<string, (a: Args) => unknown | Promise<unknown>> = {
  load(a) {
    const spec = openObject(str(a, 'object'));
    for (const [k, v] of Object.entries((a.constants ?? {}) as Record<string, number>))
      spec.setConstant(k, v);
    if (a.pinMaps === true) for (const m of Object.values(spec.maps)) m.pinning = 'byName';
    const coll = load(spec, a.pinDir === undefined ? {} : { pinDir: str(a, 'pinDir') });
    const id = `c${next++}`;
    collections.set(id, coll);
    return {
      coll: id,
      programs: Object.fromEntries(Object.values(coll.programs).map((p) => [p.name, p.info().id])),
    };
  },
  tcxAttach(a) {
    const o = a.options as Record<string, unknown>;
    if (typeof o.expectedRevision === 'number') o.expectedRevision = BigInt(o.expectedRevision);
    return keep(tcxAttach(program(a), o as never));
  },
  tcAttach: (a) => keep(tcAttach(program(a), a.options as never)),
  xdpAttach: (a) => keep(xdpAttach(program(a), a.options as never)),
  attach: (a) => keep(attach(program(a), a.options as never)),
  openPinned: (a) => keep(openPinnedLink(str(a, 'path'))),
  update(a) {
    link(a).update(program(a));
    return link(a).info();
  },
  info: (a) => link(a).info(),
  pin: (a) => link(a).pin(str(a, 'path')),
  unpin: (a) => link(a).unpin(),
  detach(a) {
    link(a).detach();
    links.delete(str(a, 'link'));
  },
  close(a) {
    link(a).close();
    links.delete(str(a, 'link'));
  },
  closeCollection(a) {
    collections.get(str(a, 'coll'))?.close();
    collections.delete(str(a, 'coll'));
  },
  query: (a) => query(str(a, 'ifname')),
  listenUdp(a) {
    const port = a.port as number;
    return new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      const entry = { socket, count: 0 };
      socket.on('message', () => {
        entry.count++;
      });
      socket.once('error', reject);
      socket.bind(port, str(a, 'address'), () => {
        sockets.set(port, entry);
        resolve(port);
      });
    });
  },
  udpCount: (a) => sockets.get(a.port as number)?.count ?? -1,
};

function encode(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: Args };
  try {
    const fn = ops[op];
    if (fn === undefined) throw new Error(`unknown op ${op}`);
    const result = await fn(args ?? {});
    process.stdout.write(`${encode({ id, ok: true, result })}\n`);
  } catch (err) {
    const e = err as Error & { code?: string; log?: string };
    process.stdout.write(
      `${encode({ id, ok: false, error: { name: e.name, code: e.code, message: e.message } })}\n`,
    );
  }
});
rl.on('close', () => {
  for (const { socket } of sockets.values()) socket.close();
  for (const l of links.values()) l.close();
  for (const c of collections.values()) c.close();
  process.exit(0);
});
process.stdout.write(`${encode({ id: 0, ok: true, result: 'ready' })}\n`);
