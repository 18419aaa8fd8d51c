/**
 * The agent's durable state: a snapshot (`state.json`, written atomically) and a journal beside it
 * (`state.journal`, append-only, one JSON record per line). A change (a pod added or removed, a lease
 * set or confirmed, a field replaced) is one `write(2)` of its records at the end of the journal before the
 * change is reported, so its cost does not grow with the number of pods; the journal is folded into a new
 * snapshot when it outgrows the snapshot. The address reservations are part of it (the `ipam` table: one record
 * per allocation or release). Together with the pinned maps this is everything a restarted agent needs.
 *
 * Both files live in the state directory, next to the kernel objects they describe (namespaces, veths, pins):
 * none of them survives a reboot, so the records are not fsync'ed; a write that returned is in the page cache
 * and survives the agent's process (also `kill -9`). A record cut short by a crash is the last line and is
 * ignored (its change was never reported).
 *
 * Generations: the snapshot names the journal generation whose records apply on top of it (`journal`), the
 * journal's first line names its own. A compaction writes the snapshot of generation n+1, then a fresh journal
 * of generation n+1, each through a temp file and a rename: a crash in between leaves a journal of an older
 * generation, whose records are all in the snapshot and are skipped; a reader that read the snapshot before a
 * compaction and the journal after it sees a newer generation and reads again.
 */

import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { PolicyObject } from '@datapath/policy';
import { AgentError } from './errors.js';
import type { LbSettings } from './lb-settings.js';
import type { ServiceSpec, ServiceView } from './services.js';

/** A pod the agent runs: its namespace, endpoint, address and datapath ids. */
export interface PodRecord {
  /** `ns/name`. */
  key: string;
  ns: string;
  name: string;
  labels: Record<string, string>;
  ports: { port: number; protocol: string; name?: string }[];
  /** The scenario's address for this pod, when it differs from `ip` (remapped into the pod CIDR). */
  scenarioIp?: string;
  ip: string;
  /** The pod's IPv6 address (dual stack, attached pods only). */
  ip6?: string;
  /** Named network namespace of the pod (`/run/netns/<netns>`). */
  netns: string;
  /** Endpoint id: the key prefix of its policy entries, its counters' key. */
  lxcId: number;
  /** Host-side veth, in the node namespace. */
  hostIfname: string;
  hostIfindex: number;
  mac: string;
  nodeMac: string;
  /** Security identity the last policy compile gave the pod. */
  identity: number;
  /** How the programs are attached: tcx links (pinned) or legacy tc filters. */
  attach: 'tcx' | 'tc';
  /**
   * Set for a pod a container runtime created through the API (CNI ADD): the runtime owns its network
   * namespace (`netns` is then the namespace's path, never deleted by the agent).
   */
  attachment?: PodAttachment;
}

/** The container attachment of a CNI-created pod. */
export interface PodAttachment {
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** `CNI_IFNAME`: the interface inside the pod. */
  ifname: string;
  /** `CNI_NETNS`: the path of the runtime's network namespace. */
  netnsPath: string;
}

/** An address handed out with an expiration that was not confirmed yet (IPAM allocate, CNI ADD). */
export interface PendingLease {
  /** The IPAM owner. */
  owner: string;
  /** Epoch milliseconds after which the agent releases it. */
  expiresAt: number;
  /** The attachment it was allocated for (a CNI ADD), whose half-made endpoint goes with it. */
  containerId?: string;
  ifname?: string;
}

/** Everything the agent persists besides maps and the IPAM store. */
export interface AgentState {
  version: 1;
  name: string;
  /** Prefix of every namespace, link and pin the agent creates. */
  prefix: string;
  podCidr: string;
  /** The IPv6 pod CIDR, when the agent has one. */
  podCidr6?: string;
  /** The node's address (`host` in scenarios), on the node namespace's loopback. */
  hostIp: string;
  nodeNetns: string;
  worldNetns: string;
  worldIps: string[];
  pinDir: string;
  enforcement: string;
  namespaces: Record<string, { labels: Record<string, string> }>;
  /** Security identities handed out so far (scope and labels → number), kept across compiles and restarts. */
  identities?: Record<string, number>;
  /** Policy objects as given (Kubernetes / Cilium objects, validated). */
  policies: PolicyObject[];
  pods: Record<string, PodRecord>;
  /** `false` when the datapath was built without events (AgentOptions.events). */
  events?: false;
  /** How services pick backends and the Maglev hash seed, fixed at start (absent in older states: the defaults). */
  lb?: LbSettings;
  /** Services (scenario `services`, validated): the lb maps are written from them and the pods. */
  services?: ServiceSpec[];
  /** The services' frontends and backends as last written to the lb maps (`agent service list`). */
  serviceStatus?: ServiceView[];
  /** Pods marked terminating: as backends they keep their flows and get no new ones. */
  terminating?: string[];
  /** Addresses allocated with an expiration and not confirmed yet, by IP. */
  leases?: Record<string, PendingLease>;
  /** Every reserved pod-CIDR address (pods, leases, the node's own), IP → IPAM owner. */
  ipam?: Record<string, string>;
  startedAt: string;
  /** The journal generation whose records apply on top of this snapshot (absent: none). */
  journal?: number;
}

/** Path of the network namespace file of a pod (its own named one, or the runtime's). */
export function podNetnsPath(pod: Pick<PodRecord, 'netns' | 'attachment'>): string {
  return pod.attachment?.netnsPath ?? `/run/netns/${pod.netns}`;
}

/** Path of the state file (the snapshot) inside a state directory. */
export function statePath(stateDir: string): string {
  return join(stateDir, 'state.json');
}

/** Path of the state journal inside a state directory. */
export function journalPath(stateDir: string): string {
  return join(stateDir, 'state.journal');
}

/** The top-level fields of the state a journal record replaces whole. */
export type StateField =
  | 'namespaces'
  | 'identities'
  | 'policies'
  | 'enforcement'
  | 'worldIps'
  | 'services'
  | 'serviceStatus'
  | 'terminating';

/**
 * One journal record: a pod (by key), a pending lease or an address reservation (by IP) set to a value or
 * removed (`null`), or a top-level field replaced (`null`: removed).
 */
export type StateRecord =
  | { pod: string; value: PodRecord | null }
  | { lease: string; value: PendingLease | null }
  | { ipam: string; value: string | null }
  | { field: StateField; value: unknown };

/** Applies journal records to a state, in order (what a load does after reading the snapshot). */
export function applyRecords(state: AgentState, records: Iterable<StateRecord>): AgentState {
  for (const r of records) {
    if ('pod' in r) {
      if (r.value === null) delete state.pods[r.pod];
      else state.pods[r.pod] = r.value;
    } else if ('lease' in r) {
      state.leases ??= {};
      if (r.value === null) delete state.leases[r.lease];
      else state.leases[r.lease] = r.value;
    } else if ('ipam' in r) {
      state.ipam ??= {};
      if (r.value === null) delete state.ipam[r.ipam];
      else state.ipam[r.ipam] = r.value;
    } else if (r.value === null) delete (state as unknown as Record<string, unknown>)[r.field];
    else (state as unknown as Record<string, unknown>)[r.field] = r.value;
  }
  return state;
}

/** The journal's first line: its generation. */
const journalHeader = (gen: number) => `${JSON.stringify({ journal: gen })}\n`;

/** Writes `text` to `path` through a temp file and a rename. */
function replaceFile(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/**
 * Writes a snapshot of `state` with a fresh, empty journal of generation `gen` (default: the next one). What
 * {@link StateStore} does at open and at each compaction; for a process that does not keep a store open.
 * @returns the snapshot's size in bytes.
 */
export function saveState(stateDir: string, state: AgentState, gen = (state.journal ?? 0) + 1): number {
  mkdirSync(stateDir, { recursive: true });
  const text = `${JSON.stringify({ ...state, journal: gen })}\n`;
  replaceFile(statePath(stateDir), text);
  replaceFile(journalPath(stateDir), journalHeader(gen));
  return text.length;
}

/**
 * The state's writer, kept open by a running agent: {@link StateStore.append} adds a change's records to the
 * journal with one `write(2)`; {@link StateStore.snapshot} folds everything into a new snapshot (the agent calls
 * it when {@link StateStore.compactionDue}, and for its rare whole-state changes).
 */
export class StateStore {
  readonly stateDir: string;
  #fd: number;
  #gen: number;
  #snapshotBytes: number;
  #journalBytes: number;

  private constructor(stateDir: string, fd: number, gen: number, snapshotBytes: number) {
    this.stateDir = stateDir;
    this.#fd = fd;
    this.#gen = gen;
    this.#snapshotBytes = snapshotBytes;
    this.#journalBytes = fstatSync(fd).size;
  }

  /**
   * Opens the store of `stateDir` and writes `state` as its first snapshot (a new generation: whatever the
   * journal held, a cut-short last record included, is folded in or dropped).
   */
  static open(stateDir: string, state: AgentState): StateStore {
    const gen = (state.journal ?? 0) + 1;
    const bytes = saveState(stateDir, state, gen);
    state.journal = gen;
    return new StateStore(stateDir, openSync(journalPath(stateDir), 'a'), gen, bytes);
  }

  /** Whether the journal outgrew the snapshot (and 64 KiB): time for {@link StateStore.snapshot}. */
  get compactionDue(): boolean {
    return this.#journalBytes > Math.max(64 * 1024, this.#snapshotBytes);
  }

  /** Appends the records of one change, in one write. */
  append(records: readonly StateRecord[]): void {
    if (records.length === 0) return;
    let text = '';
    for (const r of records) text += `${JSON.stringify(r)}\n`;
    const buf = Buffer.from(text);
    let off = 0;
    while (off < buf.length) off += writeSync(this.#fd, buf, off);
    this.#journalBytes += buf.length;
  }

  /** Writes `state` as the snapshot of the next generation, with an empty journal. */
  snapshot(state: AgentState): void {
    const gen = this.#gen + 1;
    this.#snapshotBytes = saveState(this.stateDir, state, gen);
    state.journal = gen;
    this.#gen = gen;
    closeSync(this.#fd);
    this.#fd = openSync(journalPath(this.stateDir), 'a');
    this.#journalBytes = fstatSync(this.#fd).size;
  }

  /** Closes the journal (what was written stays). Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }
}

/** Reads the snapshot of `stateDir`. */
function readSnapshot(stateDir: string): AgentState {
  const path = statePath(stateDir);
  if (!existsSync(path))
    throw new AgentError('NotRunning', `no agent state in ${stateDir} (start one with \`agent up\`)`);
  try {
    const state = JSON.parse(readFileSync(path, 'utf8')) as AgentState;
    if (state.version !== 1) throw new Error(`unknown state version ${String(state.version)}`);
    return state;
  } catch (err) {
    throw new AgentError('InvalidArgument', `unreadable agent state ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * The journal's records for generation `gen`: `[]` when there is no journal or it is of an older generation
 * (its records are in the snapshot), `undefined` when it is of a newer one (the snapshot was replaced since it
 * was read). A last line without its newline (a write cut short) is left out.
 */
function readJournal(stateDir: string, gen: number): StateRecord[] | undefined {
  let text: string;
  try {
    text = readFileSync(journalPath(stateDir), 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  lines.pop(); // the unterminated rest: empty, or a record cut short
  let header: { journal?: unknown };
  try {
    header = JSON.parse(lines[0] ?? '') as { journal?: unknown };
  } catch {
    return [];
  }
  const at = typeof header.journal === 'number' ? header.journal : -1;
  if (at > gen) return undefined;
  if (at < gen) return [];
  const out: StateRecord[] = [];
  for (const line of lines.slice(1)) out.push(JSON.parse(line) as StateRecord);
  return out;
}

/**
 * Reads the state of the agent in `stateDir`: the snapshot and the journal's records on top of it.
 * @throws AgentError `NotRunning` when there is none, `InvalidArgument` when it is unreadable.
 */
export function loadState(stateDir: string): AgentState {
  for (let attempt = 0; ; attempt++) {
    const state = readSnapshot(stateDir);
    let records: StateRecord[] | undefined;
    try {
      records = state.journal === undefined ? [] : readJournal(stateDir, state.journal);
    } catch (err) {
      throw new AgentError(
        'InvalidArgument',
        `unreadable agent state journal ${journalPath(stateDir)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    // A compaction ran between the two reads: read both again.
    if (records === undefined && attempt < 10) continue;
    return applyRecords(state, records ?? []);
  }
}
