import { describe, expect, it } from 'vitest';
import { ipv4ToNetworkU32 } from '../src/datapath.js';
import {
  CtFlags,
  ctEntry,
  dpConfig,
  endpointInfo,
  FWD_MAX_ENDPOINTS,
  fwdValue,
  metricsKey,
  reasonName,
} from '../src/maps.js';
import { renderReport } from '../src/report.js';

describe('layouts', () => {
  it('mirror the C structs', () => {
    expect(endpointInfo.size).toBe(28);
    expect(metricsKey.size).toBe(8);
    // struct fwd_value: ingress {packets, bytes} then egress
    expect(fwdValue.size).toBe(32);
    const fv = new Uint8Array(32);
    fwdValue.encode(
      { ingress: { packets: 1n, bytes: 2n }, egress: { packets: 3n, bytes: 4n } },
      new DataView(fv.buffer),
      0,
    );
    expect([fv[0], fv[8], fv[16], fv[24]]).toEqual([1, 2, 3, 4]);
    expect(FWD_MAX_ENDPOINTS).toBe(4096);
    expect(dpConfig.size).toBe(20);
    expect(ctEntry.size).toBe(32);
    // struct ct_entry: rev at 16, flags at 28, drop_lxc at 30
    const b = new Uint8Array(32);
    ctEntry.encode(
      {
        createdNs: 1n,
        seenJiffies: 2n,
        rev: 7,
        srcSecId: 3,
        dstSecId: 4,
        flags: CtFlags.CT_F_REPLY | CtFlags.CT_F_DENIED,
        dropReason: 2,
        dropLxc: 0x102,
      },
      new DataView(b.buffer),
      0,
    );
    expect([b[16], b[28], b[29], b[30], b[31]]).toEqual([7, 3, 2, 2, 1]);
    // struct endpoint_info: the pod IPv4 in network order at 24
    const ep = new Uint8Array(28);
    endpointInfo.encode(
      {
        ifindex: 1,
        lxcId: 2,
        flags: 0,
        secId: 3,
        mac: '02:00:00:00:00:01',
        nodeMac: '02:00:00:00:00:02',
        ip: '10.244.1.20',
      },
      new DataView(ep.buffer),
      0,
    );
    expect([...ep.subarray(24)]).toEqual([10, 244, 1, 20]);
    expect(reasonName(3)).toBe('policy-deny');
    expect(reasonName(99)).toBe('reason-99');
  });

  it('turns an IPv4 address into the u32 whose little-endian bytes are the address', () => {
    const v = ipv4ToNetworkU32('10.244.1.20');
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    expect([...b]).toEqual([10, 244, 1, 20]);
  });
});

describe('renderReport', () => {
  it('marks mismatches in the matrix and the table', () => {
    const out = renderReport({
      results: [
        {
          from: 'x/a',
          to: 'x/b',
          port: 80,
          protocol: 'TCP',
          expect: 'deny',
          measured: 'allow',
          compiled: 'deny',
          detail: 'connected',
          ms: 1,
          mismatch: true,
        },
        {
          from: 'x/a',
          to: 'host',
          port: 80,
          protocol: 'TCP',
          measured: 'deny',
          compiled: 'deny',
          detail: 'timeout (dropped)',
          ms: 1,
          mismatch: false,
        },
        {
          from: 'x/b',
          to: 'x/a',
          port: 9,
          protocol: 'SCTP',
          measured: 'skipped',
          compiled: 'allow',
          detail: 'SCTP not supported',
          ms: 0,
          mismatch: false,
        },
      ],
      mismatches: 1,
      skipped: 1,
      setupMs: 1,
      probeMs: 1,
      pods: [],
    });
    expect(out).toMatch(/x\/a\s+\.\s+✓!\s+✗/);
    expect(out).toMatch(/MISMATCH/);
    expect(out).toMatch(/2 probes sent, 1 as expected, 1 mismatched, 1 not sent/);
  });
});
