// The requests of the golden-byte recording, shared by scripts/record-golden.ts (which sends them to a
// real kernel in a throwaway namespace and stores request and reply bytes) and golden.test.ts (which
// re-encodes them byte for byte and decodes the stored replies).
import { encodeAddress } from '../../src/codec/addr.js';
import type { Writer } from '../../src/codec/bytes.js';
import { encodeLink, IfFlag } from '../../src/codec/link.js';
import { Flag, Msg } from '../../src/codec/message.js';
import { encodeNeigh } from '../../src/codec/neigh.js';
import { encodeQdisc, TcHandle } from '../../src/codec/qdisc.js';
import { encodeRoute } from '../../src/codec/route.js';

/** Which decoder reads the replies of a case. */
export type ReplyKind = 'link' | 'addr' | 'route' | 'neigh' | 'qdisc' | 'ack';

/** One request of the recording. */
export interface GoldenCase {
  name: string;
  type: number;
  flags: number;
  body: (w: Writer) => void;
  reply: ReplyKind;
  /** Partial decoded objects that must appear among the replies (for `ack`: the decoded ack). */
  expect: Record<string, unknown>[];
  /** For a rejected request: what the kernel's extended-ACK message must match. */
  kernelMessage?: RegExp;
}

const CREATE = Flag.REQUEST | Flag.ACK | Flag.CREATE | Flag.EXCL;
const SET = Flag.REQUEST | Flag.ACK;
const GET = Flag.REQUEST;
const DUMP = Flag.REQUEST | Flag.DUMP;
const UP = { flags: IfFlag.UP, change: IfFlag.UP };

export const CASES: GoldenCase[] = [
  {
    name: 'newlink-veth-with-peer',
    type: Msg.NEWLINK,
    flags: CREATE,
    body: (w) =>
      encodeLink(w, {
        index: 10,
        name: 'veth0',
        mtu: 1400,
        address: '02:00:00:00:00:01',
        txqlen: 1000,
        info: { kind: 'veth', peer: { index: 11, name: 'veth1', mtu: 1400, address: '02:00:00:00:00:02' } },
      }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'newlink-bridge',
    type: Msg.NEWLINK,
    flags: CREATE,
    body: (w) => encodeLink(w, { index: 12, name: 'br0', info: { kind: 'bridge', stpState: 0 } }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'newlink-vxlan',
    type: Msg.NEWLINK,
    flags: CREATE,
    body: (w) =>
      encodeLink(w, {
        index: 13,
        name: 'vx0',
        info: { kind: 'vxlan', vni: 42, port: 4789, local: '10.244.0.1', learning: false, ttl: 64 },
      }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'setlink-up-veth0',
    type: Msg.SETLINK,
    flags: SET,
    body: (w) => encodeLink(w, { index: 10, ...UP }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'setlink-up-veth1',
    type: Msg.SETLINK,
    flags: SET,
    body: (w) => encodeLink(w, { index: 11, ...UP }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'setlink-mtu-too-small',
    type: Msg.SETLINK,
    flags: SET,
    body: (w) => encodeLink(w, { index: 10, mtu: 10 }),
    reply: 'ack',
    expect: [{ errno: 22 }],
    kernelMessage: /mtu/i,
  },
  {
    name: 'newaddr-v4',
    type: Msg.NEWADDR,
    flags: CREATE,
    body: (w) =>
      encodeAddress(w, { index: 10, prefixLen: 24, local: '10.244.0.1', address: '10.244.0.1', flags: 0x80 }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'newaddr-v6-nodad',
    type: Msg.NEWADDR,
    flags: CREATE,
    body: (w) =>
      encodeAddress(w, {
        index: 10,
        prefixLen: 64,
        local: 'fd00::1',
        address: 'fd00::1',
        flags: 0x80 | 0x02,
      }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'newroute-via-mtu-table',
    type: Msg.NEWROUTE,
    flags: CREATE,
    body: (w) =>
      encodeRoute(w, {
        dst: '10.244.9.0',
        dstLen: 24,
        gateway: '10.244.0.254',
        oif: 10,
        table: 1000,
        protocol: 4,
        scope: 0,
        type: 1,
        mtu: 1300,
        priority: 7,
      }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'newneigh-permanent',
    type: Msg.NEWNEIGH,
    flags: CREATE,
    body: (w) => encodeNeigh(w, { index: 10, dst: '10.244.0.9', lladdr: '02:00:00:00:00:09', state: 0x80 }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'newqdisc-clsact',
    type: Msg.NEWQDISC,
    flags: CREATE,
    body: (w) =>
      encodeQdisc(w, { index: 10, handle: TcHandle.CLSACT_HANDLE, parent: TcHandle.CLSACT, kind: 'clsact' }),
    reply: 'ack',
    expect: [{ errno: 0 }],
  },
  {
    name: 'getlink-veth0',
    type: Msg.GETLINK,
    flags: GET,
    body: (w) => encodeLink(w, { name: 'veth0' }),
    reply: 'link',
    expect: [
      {
        index: 10,
        name: 'veth0',
        mtu: 1400,
        address: '02:00:00:00:00:01',
        broadcast: 'ff:ff:ff:ff:ff:ff',
        txqlen: 1000,
        link: 11,
        type: 1,
        info: { kind: 'veth' },
      },
    ],
  },
  {
    name: 'getlink-vx0',
    type: Msg.GETLINK,
    flags: GET,
    body: (w) => encodeLink(w, { index: 13 }),
    reply: 'link',
    expect: [
      {
        name: 'vx0',
        info: { kind: 'vxlan', vni: 42, port: 4789, local: '10.244.0.1', learning: false, ttl: 64 },
      },
    ],
  },
  {
    name: 'getlink-br0',
    type: Msg.GETLINK,
    flags: GET,
    body: (w) => encodeLink(w, { name: 'br0' }),
    reply: 'link',
    expect: [{ name: 'br0', index: 12, info: { kind: 'bridge', stpState: 0 } }],
  },
  {
    name: 'dumplink',
    type: Msg.GETLINK,
    flags: DUMP,
    body: (w) => encodeLink(w, {}),
    reply: 'link',
    expect: [
      { index: 1, name: 'lo', type: 772 },
      { index: 11, name: 'veth1', link: 10 },
    ],
  },
  {
    name: 'dumpaddr',
    type: Msg.GETADDR,
    flags: DUMP,
    body: (w) => w.u8(0).u8(0).u8(0).u8(0).u32(0),
    reply: 'addr',
    expect: [
      { family: 2, index: 10, prefixLen: 24, local: '10.244.0.1', address: '10.244.0.1', label: 'veth0' },
      { family: 10, index: 10, prefixLen: 64, address: 'fd00::1' },
    ],
  },
  {
    name: 'dumproute-v4',
    type: Msg.GETROUTE,
    flags: DUMP,
    body: (w) => encodeRoute(w, { family: 2, table: 0 }),
    reply: 'route',
    expect: [
      {
        family: 2,
        dst: '10.244.9.0',
        dstLen: 24,
        gateway: '10.244.0.254',
        oif: 10,
        table: 1000,
        protocol: 4,
        mtu: 1300,
        priority: 7,
      },
      {
        family: 2,
        dst: '10.244.0.0',
        dstLen: 24,
        oif: 10,
        table: 254,
        protocol: 2,
        scope: 253,
        prefsrc: '10.244.0.1',
      },
    ],
  },
  {
    name: 'dumpneigh-v4',
    type: Msg.GETNEIGH,
    flags: DUMP,
    body: (w) => encodeNeigh(w, { family: 2, index: 0 }),
    reply: 'neigh',
    expect: [{ family: 2, index: 10, dst: '10.244.0.9', lladdr: '02:00:00:00:00:09', state: 0x80 }],
  },
  {
    name: 'dumpqdisc',
    type: Msg.GETQDISC,
    flags: DUMP,
    body: (w) => encodeQdisc(w, { index: 0 }),
    reply: 'qdisc',
    expect: [{ index: 10, kind: 'clsact', handle: TcHandle.CLSACT_HANDLE, parent: TcHandle.CLSACT }],
  },
];
