import { describe, expect, it } from 'vitest';
import { Writer } from '../src/codec/bytes.js';
import { Flag, Msg, splitMessages } from '../src/codec/message.js';
import { Conn, type Transport } from '../src/conn.js';
import { NetlinkError } from '../src/errors.js';

const PORT = 4242;

/** Builds one reply message with the given header fields and payload. */
function msg(type: number, flags: number, seq: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  w.u32(0).u16(type).u16(flags).u32(seq).u32(PORT);
  body(w);
  w.pad();
  w.patchU32(0, w.length);
  return w.finish();
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** A fake transport: `reply` is called with each sent request and returns the datagrams to deliver. */
function fake(
  reply: (req: { type: number; flags: number; seq: number }, n: number) => Uint8Array[],
): Transport & {
  sent: number;
} {
  const queue: Uint8Array[] = [];
  const t = {
    portId: PORT,
    sent: 0,
    send(buf: Uint8Array) {
      const [req] = splitMessages(buf);
      if (!req) throw new Error('no request');
      t.sent++;
      queue.push(...reply(req, t.sent));
    },
    recv(buf: Uint8Array) {
      const next = queue.shift();
      if (!next) throw new Error('recv on an empty queue would block');
      buf.set(next.subarray(0, Math.min(next.byteLength, buf.byteLength)));
      return next.byteLength;
    },
    close() {},
  };
  return t;
}

const ack = (seq: number, errno: number, extMsg?: string) =>
  msg(Msg.ERROR, Flag.CAPPED | (extMsg === undefined ? 0 : Flag.ACK_TLVS), seq, (w) => {
    w.i32(-errno);
    w.u32(16).u16(Msg.NEWLINK).u16(0).u32(seq).u32(PORT); // the capped original header
    if (extMsg !== undefined) w.attrString(1, extMsg);
  });

describe('Conn request/ack loop', () => {
  it('returns after a positive ACK and skips replies of other sequence numbers', () => {
    const t = fake((req) => [concat(ack(req.seq - 1, 17), ack(req.seq, 0))]);
    const conn = new Conn(t);
    expect(conn.request(Msg.NEWLINK, 0, () => {}, 'linkNew')).toEqual([]);
  });

  it('turns an NLMSG_ERROR into a typed error carrying the extended-ACK text', () => {
    const t = fake((req) => [ack(req.seq, 22, 'Invalid MTU')]);
    const conn = new Conn(t);
    let err: unknown;
    try {
      conn.request(Msg.NEWLINK, 0, () => {}, 'linkNew', 'v0');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({
      code: 'InvalidArgument',
      errno: 22,
      op: 'linkNew',
      syscall: 'RTM_NEWLINK',
      target: 'v0',
      kernelMessage: 'Invalid MTU',
    });
    expect((err as Error).message).toContain('Invalid MTU');
  });

  it('collects a multi-part dump across datagrams until NLMSG_DONE', () => {
    const t = fake((req) => [
      concat(
        msg(Msg.NEWLINK, Flag.MULTI, req.seq, (w) => w.u32(1)),
        msg(Msg.NEWLINK, Flag.MULTI, req.seq, (w) => w.u32(2)),
      ),
      concat(
        msg(Msg.NEWLINK, Flag.MULTI, req.seq, (w) => w.u32(3)),
        msg(Msg.DONE, Flag.MULTI, req.seq, (w) => w.i32(0)),
      ),
    ]);
    const out = new Conn(t).dump(Msg.GETLINK, () => {}, 'linkDump');
    expect(out.map((m) => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0, true))).toEqual([
      1, 2, 3,
    ]);
  });

  it('retries a dump marked NLM_F_DUMP_INTR and returns the clean one', () => {
    const t = fake((req, n) => [
      concat(
        msg(Msg.NEWLINK, Flag.MULTI | (n === 1 ? Flag.DUMP_INTR : 0), req.seq, (w) => w.u32(n)),
        msg(Msg.DONE, Flag.MULTI, req.seq, (w) => w.i32(0)),
      ),
    ]);
    const out = new Conn(t).dump(Msg.GETLINK, () => {}, 'linkDump');
    expect(t.sent).toBe(2);
    expect(out).toHaveLength(1);
  });

  it('gives up with Interrupted after five interrupted dumps', () => {
    const t = fake((req) => [
      concat(
        msg(Msg.NEWLINK, Flag.MULTI | Flag.DUMP_INTR, req.seq, (w) => w.u32(0)),
        msg(Msg.DONE, Flag.MULTI, req.seq, (w) => w.i32(0)),
      ),
    ]);
    expect(() => new Conn(t).dump(Msg.GETLINK, () => {}, 'linkDump')).toThrow(
      expect.objectContaining({ code: 'Interrupted' }),
    );
    expect(t.sent).toBe(5);
  });

  it('reports a truncated datagram as TooBig instead of decoding garbage', () => {
    const big = msg(Msg.NEWLINK, 0, 0, (w) => w.bytes(new Uint8Array(70_000)));
    const t = fake(() => [big]);
    expect(() => new Conn(t).request(Msg.GETLINK, 0, () => {}, 'linkGet')).toThrow(
      expect.objectContaining({ code: 'TooBig' }),
    );
  });

  it('refuses requests after close', () => {
    const conn = new Conn(fake(() => []));
    conn.close();
    expect(() => conn.request(Msg.GETLINK, 0, () => {}, 'linkGet')).toThrow(
      expect.objectContaining({ code: 'BadFd' }),
    );
  });
});
