// The ipcache: prefix → identity, kept as the engine's inputs say it should be.
import type { ChangeSink } from './engine-records.js';
import { IPCACHE_FLAG_HOST, IPCACHE_FLAG_LOCAL_ENDPOINT, type IpcacheValue } from './engine-types.js';
import { PolicyError } from './errors.js';
import { RESERVED } from './identity.js';
import { tryParsePrefix } from './prefix.js';

/** Where the ipcache learns who owns a prefix. */
export interface PrefixOwners {
  /** Identity of the pod with this /32 or /128, if any. */
  podIdentity(prefix: string): number | undefined;
  /** Identity of a CIDR named by a rule, if any. */
  cidrIdentity(prefix: string): number | undefined;
}

/** The ipcache and the node's own addresses. */
export class IpcacheTable {
  /** Canonical prefix text → value (the public `ipcache` view). */
  readonly entries = new Map<string, IpcacheValue>();
  readonly #hostIPs: string[] = [];

  /** @throws {@link PolicyError} `InvalidArgument` for a host IP that is not an address. */
  constructor(
    hostIPs: readonly string[],
    private readonly owners: PrefixOwners,
  ) {
    for (const ip of hostIPs) {
      const p = tryParsePrefix(ip);
      if (p === undefined || p.length !== (p.family === 4 ? 32 : 128))
        throw new PolicyError('InvalidArgument', `hostIPs: not an IP address: ${JSON.stringify(ip)}`);
      this.#hostIPs.push(p.text);
    }
    this.entries.set('0.0.0.0/0', { identity: RESERVED.world, flags: 0 });
    this.entries.set('::/0', { identity: RESERVED.world, flags: 0 });
    for (const h of this.#hostIPs) this.entries.set(h, { identity: RESERVED.host, flags: IPCACHE_FLAG_HOST });
  }

  /** Sets the entry of a prefix to what it should be: host, else pod, else CIDR identity, else none. */
  sync(prefix: string, changes: ChangeSink): void {
    if (prefix === '0.0.0.0/0' || prefix === '::/0') return;
    let value: IpcacheValue | undefined;
    const pod = this.owners.podIdentity(prefix);
    const cidrId = this.owners.cidrIdentity(prefix);
    if (this.#hostIPs.includes(prefix)) value = { identity: RESERVED.host, flags: IPCACHE_FLAG_HOST };
    else if (pod !== undefined) value = { identity: pod, flags: IPCACHE_FLAG_LOCAL_ENDPOINT };
    else if (cidrId !== undefined) value = { identity: cidrId, flags: 0 };
    this.#set(prefix, value, changes);
  }

  #set(prefix: string, value: IpcacheValue | undefined, changes: ChangeSink): void {
    const cur = this.entries.get(prefix);
    if (value === undefined) {
      if (cur === undefined) return;
      this.entries.delete(prefix);
      changes.push({ map: 'ipcache', op: 'delete', prefix });
    } else if (cur === undefined || cur.identity !== value.identity || cur.flags !== value.flags) {
      this.entries.set(prefix, value);
      changes.push({ map: 'ipcache', op: 'update', prefix, value });
    }
  }
}
