// Which identities a rule's peer selects.
import { prefixContains } from '@datapath/ip';
import type { IdentityInfo } from './identity.js';
import type { Peer } from './rules.js';
import { selectorMatches } from './selector.js';

/** A cache key of a peer: peers with the same key select the same identities. */
export function peerKey(p: Peer): string {
  switch (p.kind) {
    case 'all':
      return 'all';
    case 'selector':
      return `sel ${p.sel.text}`;
    case 'entity':
      return `entity ${p.entity}`;
    case 'cidr':
      return `cidr ${p.prefix.text} except ${p.except.map((e) => e.text).join(',')} pods=${p.pods}`;
  }
}

const CLUSTER_RESERVED: ReadonlySet<string> = new Set([
  'host',
  'remote-node',
  'init',
  'ingress',
  'health',
  'unmanaged',
  'kube-apiserver',
]);

/** True when identity `info` is one of the identities `peer` selects (never called for `all`). */
export function peerMatches(peer: Peer, info: IdentityInfo): boolean {
  switch (peer.kind) {
    case 'all':
      return true;
    case 'selector':
      return selectorMatches(peer.sel, info);
    case 'entity':
      switch (peer.entity) {
        case 'all':
          return true;
        case 'none':
          return false;
        case 'world':
          return info.kind === 'cidr' || info.reserved === 'world';
        case 'world-ipv4':
          return (info.kind === 'cidr' && info.prefix?.family === 4) || info.reserved === 'world';
        case 'world-ipv6':
          return (info.kind === 'cidr' && info.prefix?.family === 6) || info.reserved === 'world';
        case 'cluster':
          return info.kind === 'pod' || (info.reserved !== undefined && CLUSTER_RESERVED.has(info.reserved));
        case 'remote-node':
          return info.reserved === 'remote-node' || info.reserved === 'kube-apiserver';
        default:
          return info.reserved === peer.entity;
      }
    case 'cidr': {
      if (info.kind === 'cidr') {
        const p = info.prefix!;
        if (!prefixContains(peer.prefix, p)) return false;
        for (const e of peer.except) if (prefixContains(e, p)) return false;
        return true;
      }
      if (info.reserved === 'world') return peer.prefix.length === 0;
      if (info.kind === 'pod' && peer.pods && info.ipblocks !== undefined) {
        if (!info.ipblocks.has(peer.prefix.text)) return false;
        for (const e of peer.except) if (info.ipblocks.has(e.text)) return false;
        return true;
      }
      return false;
    }
  }
}
