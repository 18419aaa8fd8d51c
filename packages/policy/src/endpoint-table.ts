// The endpoints' emitted policy maps, and the diffs that bring them to their groups' maps.
import { type ChangeSink, DISCARD, type PodRec } from './engine-records.js';
import type { EndpointState } from './engine-types.js';
import { type MapState, sameValue } from './mapstate.js';

const EMPTY_STATE: MapState = new Map();

/** What each endpoint's policy map holds now (the public `endpoints` view). */
export class EndpointTable {
  /** By `namespace/name`. */
  readonly entries = new Map<string, EndpointState>();

  /**
   * Diffs each given endpoint's emitted map against its group's map; removes endpoints whose pod is gone from
   * `live` (of those in `gone` when given: an incremental update names the pods it dropped, so a change costs
   * the pods it touches, not every endpoint). With the {@link DISCARD} sink, endpoints take their maps without
   * computing a diff.
   */
  sync(
    pods: PodRec[],
    live: ReadonlyMap<string, PodRec>,
    changes: ChangeSink,
    gone?: Iterable<string>,
  ): void {
    for (const key of gone ?? [...this.entries.keys()]) {
      const ep = this.entries.get(key);
      if (ep === undefined || live.has(key)) continue;
      diffMaps(ep, ep.policy, EMPTY_STATE, changes);
      this.entries.delete(key);
    }
    for (const p of pods.sort((a, b) => (a.key < b.key ? -1 : 1))) {
      const g = p.group!;
      let ep = this.entries.get(p.key);
      if (!ep) {
        ep = {
          name: p.key,
          endpointId: p.endpointId,
          identity: p.identity,
          ip: p.spec.ip,
          policy: EMPTY_STATE,
        };
        this.entries.set(p.key, ep);
      }
      if (ep.policy !== g.state && changes !== DISCARD) diffMaps(ep, ep.policy, g.state, changes);
      ep.policy = g.state;
      ep.identity = p.identity;
      ep.ip = p.spec.ip;
    }
  }
}

function diffMaps(ep: EndpointState, before: MapState, after: MapState, changes: ChangeSink): void {
  if (before === after) return;
  for (const [k, e] of before)
    if (!after.has(k))
      changes.push({ map: 'policy', op: 'delete', endpoint: ep.name, endpointId: ep.endpointId, key: e.key });
  for (const [k, e] of after) {
    const old = before.get(k);
    if (!old || !sameValue(old.value, e.value))
      changes.push({
        map: 'policy',
        op: 'update',
        endpoint: ep.name,
        endpointId: ep.endpointId,
        key: e.key,
        value: e.value,
      });
  }
}
