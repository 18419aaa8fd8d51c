// Property tests: every message the codec can encode decodes back to itself.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AddressMessage, decodeAddress, encodeAddress } from '../src/codec/addr.js';
import { bytesToIp, Writer } from '../src/codec/bytes.js';
import { decodeLink, encodeLink, type LinkMessage } from '../src/codec/link.js';
import { decodeNeigh, encodeNeigh, type NeighMessage } from '../src/codec/neigh.js';
import { decodeQdisc, encodeQdisc } from '../src/codec/qdisc.js';
import { decodeRoute, encodeRoute, type RouteMessage } from '../src/codec/route.js';

const encode = (fn: (w: Writer) => void) => {
  const w = new Writer();
  fn(w);
  return w.finish();
};
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u8 = fc.integer({ min: 0, max: 255 });
const mac = fc
  .uint8Array({ minLength: 6, maxLength: 6 })
  .map((b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':'));
const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map(bytesToIp);
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(bytesToIp);
const ifname = fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/);

/** Drops undefined keys so optional fields compare like absent ones. */
const clean = <T>(o: object): T => JSON.parse(JSON.stringify(o)) as T;

describe('codec round trips', () => {
  it('routes', () => {
    const route = fc.oneof(
      fc.record({
        family: fc.constant(2),
        dst: v4,
        gateway: fc.option(v4, { nil: undefined }),
        prefsrc: fc.option(v4, { nil: undefined }),
      }),
      fc.record({
        family: fc.constant(10),
        dst: v6,
        gateway: fc.option(v6, { nil: undefined }),
        prefsrc: fc.option(v6, { nil: undefined }),
      }),
    );
    fc.assert(
      fc.property(
        route,
        u8,
        u8,
        u8,
        fc.integer({ min: 1, max: 0xffff_ffff }),
        u32,
        fc.option(u32, { nil: undefined }),
        fc.option(u32, { nil: undefined }),
        (r, scope, type, protocol, table, oif, mtu, priority) => {
          const m = clean<RouteMessage>({
            ...r,
            dstLen: r.family === 2 ? 24 : 64,
            srcLen: 0,
            tos: 0,
            scope,
            type,
            protocol,
            table,
            oif,
            mtu,
            priority,
            flags: 0,
          });
          const back = decodeRoute(encode((w) => encodeRoute(w, m)));
          expect(clean(back)).toEqual(m);
        },
      ),
    );
  });

  it('addresses', () => {
    fc.assert(
      fc.property(
        fc.oneof(v4, v6),
        fc.integer({ min: 0, max: 32 }),
        u32,
        u8,
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        fc.option(ifname, { nil: undefined }),
        (ip, prefixLen, flags, scope, index, label) => {
          const m = clean<AddressMessage>({
            family: ip.includes(':') ? 10 : 2,
            prefixLen,
            flags,
            scope,
            index,
            local: ip,
            address: ip,
            label,
          });
          const back = decodeAddress(encode((w) => encodeAddress(w, m)));
          // Flags above 8 bits travel in IFA_FLAGS; the decoded value is the full set.
          expect(clean(back)).toEqual(m);
        },
      ),
    );
  });

  it('neighbours', () => {
    fc.assert(
      fc.property(
        fc.oneof(v4, v6),
        mac,
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        fc.integer({ min: 0, max: 0xffff }),
        u8,
        (dst, lladdr, index, state, flags) => {
          const m: NeighMessage = {
            family: dst.includes(':') ? 10 : 2,
            index,
            state,
            flags,
            type: 0,
            dst,
            lladdr,
          };
          expect(decodeNeigh(encode((w) => encodeNeigh(w, m)))).toEqual(m);
        },
      ),
    );
  });

  it('qdiscs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        u32,
        u32,
        fc.stringMatching(/^[a-z_]{1,15}$/),
        (index, handle, parent, kind) => {
          const m = { index, handle, parent, kind };
          expect(decodeQdisc(encode((w) => encodeQdisc(w, m)))).toEqual(m);
        },
      ),
    );
  });

  it('links, including vxlan and bridge link info', () => {
    const info = fc.oneof(
      fc.constant({ kind: 'dummy' as const }),
      fc.constant({ kind: 'veth' as const }),
      fc.record({
        kind: fc.constant('bridge' as const),
        stpState: fc.integer({ min: 0, max: 1 }),
        vlanFiltering: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('vxlan' as const),
        vni: fc.integer({ min: 0, max: 0xff_ffff }),
        port: fc.integer({ min: 1, max: 0xffff }),
        local: v4.filter((x) => x !== '0.0.0.0'),
        group: v6.filter((x) => x !== '::'),
        ttl: u8,
        learning: fc.boolean(),
        external: fc.constant(true),
      }),
      fc.record({
        kind: fc.constant('other' as const),
        type: fc
          .stringMatching(/^[a-z]{1,10}$/)
          .filter((k) => !['dummy', 'veth', 'bridge', 'vxlan'].includes(k)),
      }),
    );
    fc.assert(
      fc.property(
        ifname,
        fc.integer({ min: 68, max: 65535 }),
        mac,
        u32,
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        info,
        fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
        (name, mtu, address, txqlen, index, i, genMode) => {
          const m: LinkMessage = {
            family: 0,
            type: 1,
            index,
            flags: 0,
            change: 0,
            name,
            mtu,
            address,
            txqlen,
            info: i,
            ...(genMode === undefined ? {} : { inet6AddrGenMode: genMode }),
          };
          expect(decodeLink(encode((w) => encodeLink(w, m)))).toEqual(m);
        },
      ),
    );
  });
});
