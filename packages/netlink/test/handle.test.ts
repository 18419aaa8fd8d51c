// Handle over a fake transport: request framing, reply decoding and error mapping, without a kernel.
import { describe, expect, it } from 'vitest';
import { Writer } from '../src/codec/bytes.js';
import { encodeLink } from '../src/codec/link.js';
import { Flag, Msg, type RawMessage, splitMessages } from '../src/codec/message.js';
import { encodeRoute } from '../src/codec/route.js';
import type { Transport } from '../src/conn.js';
import { Handle } from '../src/handle.js';

const PORT = 7;

function reply(type: number, flags: number, seq: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  w.u32(0).u16(type).u16(flags).u32(seq).u32(PORT);
  body(w);
  w.pad();
  w.patchU32(0, w.length);
  return w.finish();
}
const ack = (seq: number, errno = 0) =>
  reply(Msg.ERROR, Flag.CAPPED, seq, (w) => w.i32(-errno).u32(16).u16(0).u16(0).u32(seq).u32(PORT));

/** A fake kernel: `answer` maps each request to the datagrams it sends back. */
function fakeKernel(answer: (req: RawMessage) => Uint8Array[]): Transport & { requests: RawMessage[] } {
  const queue: Uint8Array[] = [];
  const requests: RawMessage[] = [];
  return {
    portId: PORT,
    requests,
    send(buf) {
      const [req] = splitMessages(buf.slice());
      requests.push(req!);
      queue.push(...answer(req!));
    },
    recv(buf) {
      const d = queue.shift()!;
      buf.set(d);
      return d.byteLength;
    },
    close() {},
  };
}

describe('Handle (fake transport)', () => {
  it('linkNew sends RTM_NEWLINK with CREATE|EXCL|ACK and the encoded link', () => {
    const k = fakeKernel((r) => [ack(r.seq)]);
    using h = Handle.fromTransport(k);
    h.linkNew({ name: 'v0', mtu: 1400 });
    h.linkNew({ name: 'v0', mtu: 1400 }, 'replace');
    const [create, replace] = k.requests;
    expect(create!.type).toBe(Msg.NEWLINK);
    expect(create!.flags).toBe(Flag.REQUEST | Flag.ACK | Flag.CREATE | Flag.EXCL);
    expect(replace!.flags).toBe(Flag.REQUEST | Flag.ACK | Flag.CREATE | Flag.REPLACE);
    const w = new Writer();
    encodeLink(w, { name: 'v0', mtu: 1400 });
    expect([...create!.payload]).toEqual([...w.finish()]);
  });

  it('linkGet decodes the reply that precedes the ACK', () => {
    const k = fakeKernel((r) => [
      reply(Msg.NEWLINK, 0, r.seq, (w) =>
        encodeLink(w, { index: 4, name: 'eth0', mtu: 9000, address: '02:00:00:00:00:04' }),
      ),
      ack(r.seq),
    ]);
    using h = Handle.fromTransport(k);
    expect(h.linkGet({ name: 'eth0' })).toMatchObject({
      index: 4,
      name: 'eth0',
      mtu: 9000,
      address: '02:00:00:00:00:04',
    });
  });

  it('routeDump returns only route messages of the dump and sends a DUMP request', () => {
    const k = fakeKernel((r) => [
      reply(Msg.NEWROUTE, Flag.MULTI, r.seq, (w) =>
        encodeRoute(w, { dst: '10.244.0.0', dstLen: 16, oif: 2, table: 254 }),
      ),
      reply(Msg.NEWROUTE, Flag.MULTI, r.seq, (w) =>
        encodeRoute(w, { dst: 'fd00::', dstLen: 64, oif: 2, table: 254 }),
      ),
      reply(Msg.DONE, Flag.MULTI, r.seq, (w) => w.i32(0)),
    ]);
    using h = Handle.fromTransport(k);
    const routes = h.routeDump();
    expect(routes.map((x) => `${x.dst}/${x.dstLen}`)).toEqual(['10.244.0.0/16', 'fd00::/64']);
    expect(k.requests[0]!.flags).toBe(Flag.REQUEST | Flag.DUMP);
  });

  it('maps a kernel refusal to a NetlinkError naming the request and the target', () => {
    const k = fakeKernel((r) => [ack(r.seq, 19)]);
    using h = Handle.fromTransport(k);
    expect(() => h.linkDelete({ name: 'gone0' })).toThrow(
      expect.objectContaining({
        code: 'NotFound',
        errno: 19,
        op: 'linkDelete',
        syscall: 'RTM_DELLINK',
        target: 'gone0',
      }),
    );
    expect(() => h.routeNew({ dst: '10.9.0.0', dstLen: 16 })).toThrow(
      expect.objectContaining({ op: 'routeNew', syscall: 'RTM_NEWROUTE', target: '10.9.0.0' }),
    );
  });

  it('rejects bad input before sending anything', () => {
    const k = fakeKernel((r) => [ack(r.seq)]);
    using h = Handle.fromTransport(k);
    expect(() => h.linkNew({ name: 'x'.repeat(16) })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => h.addrNew({ index: 1, prefixLen: 32, local: '10.0.0.256' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => h.linkNew({ name: 'v0', address: 'nope' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(k.requests).toEqual([]);
  });
});
