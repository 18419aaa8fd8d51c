/**
 * The cluster ipcache writer's rules without a kernel: a map fake stands in for the pinned trie (its
 * kernel behaviour is covered by cluster-datapath.priv.test.ts), and the value codec against its bytes.
 */
import { describe, expect, it } from 'vitest';
import type { Datapath } from '../src/datapath.js';
import { AgentError } from '../src/errors.js';
import { ClusterIpcache, type IpcacheChange } from '../src/ipcache.js';
import { IpcacheFlags } from '../src/maps.js';

const { IPCACHE_F_HOST, IPCACHE_F_REMOTE } = IpcacheFlags;

import { encodeIpcacheKey } from '@datapath/policy';
import { type IpcacheEntry, ipcacheKey, ipcacheValue } from '../src/policy-map.js';

function fakeDatapath() {
  const map = new Map<string, IpcacheEntry>();
  let rev = 0;
  let writes = 0;
  const dp = {
    ipcache: {
      get: (k: string) => map.get(k),
      set: (k: string, v: IpcacheEntry) => {
        writes++;
        map.set(k, { ...v });
      },
      delete: (k: string) => {
        writes++;
        return map.delete(k);
      },
      dump: () => [...map],
      setMany: (es: [string, IpcacheEntry][]) => {
        for (const [k, v] of es) dp.ipcache.set(k, v);
      },
      deleteMany: (ks: string[]) => ks.filter((k) => dp.ipcache.delete(k)).length,
    },
    policyRevision: () => rev,
    bumpPolicyRevision: () => ++rev,
  };
  return { dp: dp as unknown as Datapath, map, rev: () => rev, writes: () => writes };
}

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return `${(err as AgentError).code}${(err as AgentError).reason ? `/${(err as AgentError).reason}` : ''}`;
  }
  return 'no error';
};

describe('ClusterIpcache', () => {
  it('writes remote entries flagged IPCACHE_F_REMOTE and bumps the revision once per batch', () => {
    const f = fakeDatapath();
    const ipc = new ClusterIpcache(f.dp);
    const w = ipc.apply([
      { op: 'upsert', entry: { prefix: '198.18.0.2/32', identity: 6 } },
      { op: 'upsert', entry: { prefix: '10.244.2.7', identity: 4242, node: '198.18.0.2' } },
      { op: 'upsert', entry: { prefix: 'fd00:2::7/128', identity: 4242, node: '198.18.0.2' } },
    ]);
    expect(w).toEqual({ updated: 3, deleted: 0, revision: 1 });
    expect(f.map.get('10.244.2.7/32')).toEqual({
      identity: 4242,
      flags: IPCACHE_F_REMOTE,
      tunnelEndpoint: '198.18.0.2',
    });
    expect(ipc.list()).toEqual([
      { prefix: '198.18.0.2/32', identity: 6 },
      { prefix: '10.244.2.7/32', identity: 4242, node: '198.18.0.2' },
      { prefix: 'fd00:2::7/128', identity: 4242, node: '198.18.0.2' },
    ]);
    // the same value again: no write, no bump
    ipc.upsert({ prefix: '10.244.2.7/32', identity: 4242, node: '198.18.0.2' });
    expect([f.writes(), f.rev()]).toEqual([3, 1]);
    // moved to another node: one write
    ipc.upsert({ prefix: '10.244.2.7/32', identity: 4242, node: '198.18.0.3' });
    expect([f.writes(), f.rev()]).toEqual([4, 2]);
    expect(ipc.get('10.244.2.7/32')).toEqual({ prefix: '10.244.2.7/32', identity: 4242, node: '198.18.0.3' });
    expect(ipc.delete('10.244.2.7/32')).toBe(true);
    expect(ipc.delete('10.244.2.7/32')).toBe(false);
    expect(f.rev()).toBe(3);
  });

  it('never touches the policy engine’s entries: an upsert over one is AlreadyExists, a delete skips it', () => {
    const f = fakeDatapath();
    f.map.set('198.18.0.1/32', { identity: 1, flags: IPCACHE_F_HOST });
    f.map.set('0.0.0.0/0', { identity: 2, flags: 0 });
    const ipc = new ClusterIpcache(f.dp);
    expect(code(() => ipc.upsert({ prefix: '198.18.0.1/32', identity: 6 }))).toBe(
      'AlreadyExists/IpcacheConflict',
    );
    expect(ipc.delete('198.18.0.1/32')).toBe(false);
    expect(ipc.get('198.18.0.1/32')).toBeUndefined();
    expect(ipc.list()).toEqual([]);
    expect(f.map.get('198.18.0.1/32')).toEqual({ identity: 1, flags: IPCACHE_F_HOST });
    expect(f.writes()).toBe(0);
  });

  it('validates the whole batch before the first write', () => {
    const f = fakeDatapath();
    const ipc = new ClusterIpcache(f.dp);
    const ok: IpcacheChange = { op: 'upsert', entry: { prefix: '10.244.2.7/32', identity: 300 } };
    const bad: [string, IpcacheChange][] = [
      ['host bits', { op: 'upsert', entry: { prefix: '10.244.2.7/24', identity: 300 } }],
      ['not a prefix', { op: 'upsert', entry: { prefix: 'pod-a', identity: 300 } }],
      ['world', { op: 'upsert', entry: { prefix: '0.0.0.0/0', identity: 2 } }],
      ['identity 0', { op: 'upsert', entry: { prefix: '10.244.2.8/32', identity: 0 } }],
      ['host identity', { op: 'upsert', entry: { prefix: '10.244.2.8/32', identity: 1 } }],
      ['past 24 bits', { op: 'upsert', entry: { prefix: '10.244.2.8/32', identity: 0x100_0000 } }],
      ['v6 node', { op: 'upsert', entry: { prefix: '10.244.2.8/32', identity: 300, node: 'fd00::1' } }],
      ['node 0', { op: 'upsert', entry: { prefix: '10.244.2.8/32', identity: 300, node: '0.0.0.0' } }],
      ['bad delete', { op: 'delete', prefix: '10.244.2.8/33' }],
    ];
    for (const [what, change] of bad) {
      expect(
        code(() => ipc.apply([ok, change])),
        what,
      ).toBe('InvalidArgument');
    }
    expect(f.writes()).toBe(0);
    expect(f.rev()).toBe(0);
  });

  it('a large batch (one dump, batch writes): last change per prefix wins, one bump; replace drops the rest', () => {
    const f = fakeDatapath();
    f.map.set('198.18.0.1/32', { identity: 1, flags: IPCACHE_F_HOST });
    const ipc = new ClusterIpcache(f.dp);
    const pods = Array.from({ length: 100 }, (_, i) => `10.244.9.${i}/32`);
    const up = (prefix: string, identity = 300): IpcacheChange => ({
      op: 'upsert',
      entry: { prefix, identity, node: '198.18.0.2' },
    });
    // an engine entry in the batch: refused before any write
    expect(code(() => ipc.apply([...pods.map((p) => up(p)), up('198.18.0.1/32')]))).toBe(
      'AlreadyExists/IpcacheConflict',
    );
    expect([f.writes(), f.rev()]).toEqual([0, 0]);
    const w = ipc.apply([...pods.map((p) => up(p)), up(pods[0]!, 301), { op: 'delete', prefix: pods[1]! }]);
    expect(w).toEqual({ updated: 99, deleted: 0, revision: 1 });
    expect(f.map.get(pods[0]!)?.identity).toBe(301);
    expect(f.map.has(pods[1]!)).toBe(false);
    // the same again: nothing written, no bump
    expect(ipc.apply([...pods.slice(2).map((p) => up(p)), up(pods[0]!, 301)])).toEqual({
      updated: 0,
      deleted: 0,
      revision: 1,
    });
    // replace: the named entries stay (one changes), every other remote entry goes, the engine's stays
    const w2 = ipc.replace([
      ...pods.slice(0, 50).map((p) => ({ prefix: p, identity: 300, node: '198.18.0.2' })),
    ]);
    expect(w2).toEqual({ updated: 2, deleted: 50, revision: 2 });
    expect(new Set(ipc.list().map((e) => e.prefix))).toEqual(new Set(pods.slice(0, 50)));
    expect(f.map.get('198.18.0.1/32')).toEqual({ identity: 1, flags: IPCACHE_F_HOST });
  });

  it('a kernel failure mid-batch is DatapathFailed with the cause; earlier writes stay and are published', () => {
    const f = fakeDatapath();
    const full = Object.assign(new Error('map full'), { code: 'Exhausted' });
    let n = 0;
    const set = f.dp.ipcache.set.bind(f.dp.ipcache);
    (f.dp.ipcache as { set: unknown }).set = (k: string, v: IpcacheEntry) => {
      if (++n === 2) throw full;
      set(k, v);
    };
    const ipc = new ClusterIpcache(f.dp);
    let err: unknown;
    try {
      ipc.apply([
        { op: 'upsert', entry: { prefix: '10.244.2.7/32', identity: 300 } },
        { op: 'upsert', entry: { prefix: '10.244.2.8/32', identity: 300 } },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ reason: 'DatapathFailed', cause: full });
    expect(ipc.list().map((e) => e.prefix)).toEqual(['10.244.2.7/32']);
    expect(f.rev()).toBe(1);
  });
});

describe('ipcache key codec (struct ipcache_key, 24 bytes)', () => {
  it('writes a host IPv4 key as @datapath/policy does, and takes every other prefix through it', () => {
    const prefixes = [
      '10.244.1.5/32',
      '0.0.0.0/32',
      '255.255.255.255/32',
      '10.64.3.52/32',
      '10.244.0.0/16',
      '0.0.0.0/0',
      'fd00::1/128',
      'fd00::/32',
    ];
    for (const p of prefixes) {
      const b = new Uint8Array(ipcacheKey.size).fill(0xee);
      ipcacheKey.encode(p, new DataView(b.buffer), 0);
      expect(Buffer.from(b).toString('hex'), p).toBe(Buffer.from(encodeIpcacheKey(p)).toString('hex'));
      expect(ipcacheKey.decode(new DataView(b.buffer), 0)).toBe(p);
    }
    // not canonical text: refused as before (leading zero, octet past 255, five octets, empty octet)
    for (const p of ['010.1.1.1/32', '10.1.1.256/32', '1.2.3.4.5/32', '1..2.3/32', '1.2.3.4 /32'])
      expect(() => ipcacheKey.encode(p, new DataView(new ArrayBuffer(24)), 0), p).toThrow();
  });
});

describe('ipcache value codec (struct remote_endpoint_info, 16 bytes)', () => {
  it('is the policy encoding, then tunnel_endpoint in network order, then zero padding', () => {
    const b = new Uint8Array(ipcacheValue.size);
    const v = { identity: 0x01020304, flags: IPCACHE_F_REMOTE, tunnelEndpoint: '198.18.0.2' };
    ipcacheValue.encode(v, new DataView(b.buffer), 0);
    expect(Buffer.from(b).toString('hex')).toBe('04030201' + '04000000' + 'c6120002' + '00000000');
    expect(ipcacheValue.decode(new DataView(b.buffer), 0)).toEqual(v);
    const none = new Uint8Array(ipcacheValue.size).fill(0xff);
    ipcacheValue.encode({ identity: 2, flags: 0 }, new DataView(none.buffer), 0);
    expect(ipcacheValue.decode(new DataView(none.buffer), 0)).toEqual({ identity: 2, flags: 0 });
    expect(() =>
      ipcacheValue.encode({ identity: 2, flags: 0, tunnelEndpoint: 'fd00::1' }, new DataView(b.buffer), 0),
    ).toThrowError(AgentError);
  });
});
