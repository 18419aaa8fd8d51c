// applyEndpoint / removeEndpoint: turn an EndpointPlan into kernel objects, with rollback.
import {
  AddrFlag,
  type BatchReply,
  type BatchRequest,
  Handle,
  IfFlag,
  Inet6AddrGenMode,
  type LinkMessage,
  NetlinkError,
  Netns,
  type RequestOptions,
  type RouteMessage,
  RouteProtocol,
  RouteScope,
  RouteTable,
  RouteType,
} from '@datapath/netlink';
import { leaseAsyncHandleInAsync, leaseHandleIn, openIn } from '../common.js';
import { sysctlSet, sysctlSetAsync } from '../sysctl.js';
import { aborted, bad, checkIfname, checkMac, checkMtu } from '../validate.js';
import { type EndpointMode, type EndpointPlan, hostIfname, type PlannedRoute } from './plan.js';

/** The steps of {@link applyEndpoint}, in order; {@link ApplyOptions.onStep} sees each before it runs. */
export type EndpointStep =
  | 'createVeth'
  | 'hostSysctls'
  | 'hostUp'
  | 'hostAddresses'
  | 'containerLink'
  | 'containerSysctls'
  | 'containerAddresses'
  | 'containerRoutes'
  | 'hostRoutes';

/** Options of {@link applyEndpoint}. */
export interface ApplyOptions {
  /** The namespace playing "host" (where the host veth and host routes go); default: the caller's. */
  hostNetns?: Netns | undefined;
  /**
   * A handle bound to `hostNetns` for the host-side requests, kept open by the caller across calls
   * (opening a handle inside another namespace costs a thread); default: one opened for this call. The
   * async form queues its requests on it; do not make synchronous calls on it while one runs.
   */
  hostHandle?: Handle | undefined;
  /** Called before each step; throwing aborts the apply (and rolls back). For tracing and failure injection. */
  onStep?: ((step: EndpointStep) => void) | undefined;
}

/** Options of {@link applyEndpointAsync}. */
export interface ApplyAsyncOptions extends ApplyOptions, RequestOptions {
  /**
   * Work of the caller's that needs the host end (e.g. attaching programs to it), started as soon as the veth
   * exists and run alongside the pod's and the host's requests: the apply resolves once it is done too. Its
   * failure fails the apply, which then deletes the veth like after a failed step (what the hook made itself,
   * the caller undoes).
   */
  alongside?: ((host: { name: string; index: number }) => Promise<unknown>) | undefined;
}

/** One end of the veth pair as created. */
export interface EndpointInterface {
  /** Interface name. */
  name: string;
  /** Interface index (in its own namespace). */
  index: number;
  /** Hardware address. */
  mac: string;
  /** MTU. */
  mtu: number;
}

/** What {@link applyEndpoint} created. */
export interface EndpointResult {
  /** The host veth. */
  host: EndpointInterface;
  /** The pod interface, and the namespace path it lives in. */
  container: EndpointInterface & {
    /** The pod namespace path. */
    netns: string;
  };
  /** The pod's addresses as `ip/len`. */
  addresses: string[];
}

/** Options of {@link removeEndpoint}. */
export interface RemoveOptions {
  /** The namespace playing "host"; default: the caller's. */
  hostNetns?: Netns | undefined;
  /** A handle bound to `hostNetns`, reused across calls (see {@link ApplyOptions.hostHandle}). */
  hostHandle?: Handle | undefined;
}

/** What {@link removeEndpoint} needs: the plan, or the container id and ifname it was made from. */
export interface EndpointRef {
  /** The container id. */
  containerId: string;
  /** The pod interface name, default `eth0`. */
  ifname?: string | undefined;
  /** The mode it was applied with; when omitted both naming schemes are tried. */
  mode?: EndpointMode | undefined;
  /** The pod namespace path; used to clean a leftover pod interface when the host end is gone. */
  netns?: string | undefined;
}

function checkPlan(plan: EndpointPlan, op: string): void {
  if (plan === null || typeof plan !== 'object' || !plan.host || !plan.container)
    bad(op, 'plan must come from planEndpoint');
  checkIfname(plan.host.name, op, 'host interface name');
  checkIfname(plan.container.name, op, 'ifname');
  checkIfname(plan.container.tmpName, op, 'temporary interface name');
  checkMac(plan.host.mac, op);
  checkMac(plan.container.mac, op);
  checkMtu(plan.host.mtu, op);
  checkMtu(plan.container.mtu, op);
  if (typeof plan.netns !== 'string' || !plan.netns.startsWith('/'))
    bad(op, `netns must be an absolute path`);
}

function splitCidr(cidr: string): { address: string; len: number } {
  const slash = cidr.indexOf('/');
  return { address: cidr.slice(0, slash), len: Number(cidr.slice(slash + 1)) };
}

function routeMessage(r: PlannedRoute, oif: number): RouteMessage {
  const m: RouteMessage = {
    family: r.family === 4 ? 2 : 10,
    table: RouteTable.MAIN,
    protocol: RouteProtocol.BOOT,
    type: RouteType.UNICAST,
    scope: r.scope === 'link' ? RouteScope.LINK : RouteScope.UNIVERSE,
    oif,
    dstLen: 0,
  };
  if (r.dst !== 'default') {
    const { address, len } = splitCidr(r.dst);
    m.dst = address;
    m.dstLen = len;
  }
  if (r.via !== undefined) m.gateway = r.via;
  if (r.src !== undefined) m.prefsrc = r.src;
  if (r.mtu !== undefined) m.mtu = r.mtu;
  return m;
}

function isCode(err: unknown, code: string): boolean {
  return err instanceof NetlinkError && err.code === code;
}

/** One netlink call of an endpoint apply or remove, on the host or the pod handle. */
interface NlCall {
  side: 'host' | 'pod';
  call: 'linkNew' | 'linkGet' | 'linkSet' | 'linkDelete' | 'addrNew' | 'routeNew' | 'routeDelete';
  args: unknown[];
  /** A rollback call: never cancelled by the signal (it undoes what was made). */
  undo?: boolean;
}

/** Several requests sent in one datagram on one handle (Handle.batch): one round trip for all. */
interface BatchCall {
  side: 'host' | 'pod';
  call: 'batch';
  requests: BatchRequest[];
  /** Error codes that do not fail the request at that position (a route to delete that is not there). */
  tolerate?: ReadonlyMap<number, string>;
  /** Hand every reply back, errors included (the sequence decides what a failure means). */
  settled?: boolean;
  /** The async form may run it alongside the next steps, until the sequence yields `settle`. */
  background?: boolean;
}

/** A sysctl write of a step: synchronous in a namespace window, or async through an fd opened inside. */
interface SysctlCall {
  call: 'sysctl';
  key: string;
  value: string;
  netns: Netns | undefined;
  /** The async form may run it alongside the next steps, until the sequence yields `settle`. */
  background?: boolean;
}

/** Waits for the background calls (their first failure is thrown here). */
interface SettleCall {
  call: 'settle';
}

/** Starts {@link ApplyAsyncOptions.alongside} as a background call (async form only). */
interface AlongsideCall {
  call: 'alongside';
  host: { name: string; index: number };
}

type Steps<R> = Generator<NlCall | BatchCall | SysctlCall | SettleCall | AlongsideCall, R, unknown>;

const sysctlCall = (key: string, value: string, netns: Netns | undefined): SysctlCall => ({
  call: 'sysctl',
  key,
  value,
  netns,
});

const nl = (side: NlCall['side'], call: NlCall['call'], ...args: unknown[]): NlCall => ({ side, call, args });

/** The first failure of a batch (tolerated codes aside), or undefined. */
function batchFailure(c: BatchCall, replies: BatchReply[]): Error | undefined {
  if (c.settled) return undefined;
  for (const [i, r] of replies.entries()) {
    if (r.error !== undefined && c.tolerate?.get(i) !== r.error.code) return r.error;
  }
  return undefined;
}

const queues = (n: number | undefined) => (n === undefined ? {} : { numTxQueues: n, numRxQueues: n });

const addrRequest = (index: number, a: EndpointPlan['host']['addresses'][number]): BatchRequest => ({
  op: 'addrNew',
  addr: {
    index,
    prefixLen: a.prefixLen,
    local: a.address,
    address: a.address,
    flags: AddrFlag.PERMANENT | (a.nodad ? AddrFlag.NODAD : 0),
  },
});

/**
 * The whole apply as one sequence of netlink round trips, written once: {@link applyEndpoint} runs each
 * synchronously, {@link applyEndpointAsync} awaits its async form. Requests that do not need an answer
 * before the next are sent together (one datagram, one wait): the veth with both ends named, addressed
 * (MAC), sized and up, and the host end looked up; the pod's `lo`, addresses and routes; the host's
 * addresses and routes. A failure is thrown back into the sequence, whose rollback then deletes the veth
 * (which removes everything made after it).
 */
function* applySteps(
  plan: EndpointPlan,
  podNs: Netns,
  options: ApplyOptions & Pick<ApplyAsyncOptions, 'alongside'>,
): Steps<EndpointResult> {
  const op = 'applyEndpoint';
  const step = options.onStep ?? (() => {});
  const { host: hp, container: cp } = plan;
  let created = false;
  try {
    step('createVeth');
    // The host end comes up in the create (the kernel applies its flags once the pair is linked; the
    // peer's flags would be applied before, when a veth cannot open yet), the pod end gets its final name
    // straight in the pod namespace; the lookup in the same datagram gives both indexes (IFLA_LINK of the
    // host end is the peer's index in the pod namespace).
    const up = { flags: IfFlag.UP, change: IfFlag.UP };
    const [made, got] = (yield {
      side: 'host',
      call: 'batch',
      settled: true,
      requests: [
        {
          op: 'linkNew',
          link: {
            name: hp.name,
            mtu: hp.mtu,
            address: hp.mac,
            txqlen: hp.txqlen,
            ...queues(hp.queues),
            ...up,
            info: {
              kind: 'veth',
              peer: {
                name: cp.name,
                mtu: cp.mtu,
                address: cp.mac,
                netnsFd: podNs.fd,
                ...queues(cp.queues),
              },
            },
          },
        },
        { op: 'linkGet', link: { name: hp.name } },
      ],
    }) as BatchReply[];
    if (made?.error !== undefined) throw made.error;
    created = true;
    if (got?.error !== undefined) throw got.error;
    const hostLink = got?.link as LinkMessage;
    const hostIndex = hostLink.index ?? 0;
    const podIndex = hostLink.link ?? 0;
    if (options.alongside !== undefined)
      yield { call: 'alongside', host: { name: hp.name, index: hostIndex } };

    step('hostSysctls');
    // Written alongside the pod's requests (the host end's sysctls matter once the pod sends).
    for (const s of hp.sysctls) yield { ...sysctlCall(s.key, s.value, options.hostNetns), background: true };

    step('hostUp'); // up since the create
    step('hostAddresses'); // sent with the host routes, last
    step('containerLink'); // named since the create; up (with `lo`) in the pod's one datagram below

    step('containerSysctls');
    for (const s of cp.sysctls) yield sysctlCall(s.key, s.value, podNs);

    step('containerAddresses');
    const pod: BatchRequest[] = [];
    const tolerate = new Map<number, string>();
    if (cp.ipv6LinkLocal === false) {
      // Before the up (the kernel makes the link-local address then); a kernel without IPv6 refuses it
      // (EAFNOSUPPORT): nothing to avoid there.
      tolerate.set(pod.length, 'NotSupported');
      pod.push({ op: 'linkSet', link: { index: podIndex, inet6AddrGenMode: Inet6AddrGenMode.NONE } });
    }
    pod.push(
      { op: 'linkSet', link: { index: podIndex, ...up } },
      { op: 'linkSet', link: { index: 1, ...up } },
    );
    for (const a of cp.addresses) pod.push(addrRequest(podIndex, a));
    step('containerRoutes');
    for (const d of cp.routeDeletes) {
      const { address, len } = splitCidr(d.dst);
      tolerate.set(pod.length, 'NotFound');
      pod.push({
        op: 'routeDelete',
        route: {
          family: d.family === 4 ? 2 : 10,
          dst: address,
          dstLen: len,
          oif: podIndex,
          table: RouteTable.MAIN,
          scope: RouteScope.NOWHERE,
        },
      });
    }
    for (const r of cp.routes) pod.push({ op: 'routeNew', route: routeMessage(r, podIndex) });
    // The host's requests do not wait for the pod's (other socket, nothing of theirs needed): the async form
    // sends both at once.
    yield { side: 'pod', call: 'batch', requests: pod, tolerate, background: true };

    step('hostRoutes');
    const host: BatchRequest[] = hp.addresses.map((a) => addrRequest(hostIndex, a));
    for (const r of hp.routes) host.push({ op: 'routeNew', route: routeMessage(r, hostIndex) });
    if (host.length > 0) yield { side: 'host', call: 'batch', requests: host };
    yield { call: 'settle' };

    return {
      host: { name: hp.name, index: hostIndex, mac: hp.mac, mtu: hp.mtu },
      container: { name: cp.name, index: podIndex, mac: cp.mac, mtu: cp.mtu, netns: plan.netns },
      addresses: cp.addresses.map((a) => `${a.address}/${a.prefixLen}`),
    };
  } catch (err) {
    if (created) {
      try {
        yield { ...nl('host', 'linkDelete', { name: plan.host.name }), undo: true };
      } catch (undoErr) {
        if (!isCode(undoErr, 'NotFound')) {
          throw new AggregateError(
            [err, undoErr],
            `${op}: failed, and the rollback failed too: ${String(undoErr)}`,
          );
        }
      }
    }
    throw err;
  }
}

/** Runs a step sequence with synchronous calls. */
function runSync<R>(steps: Steps<R>, handles: { host: Handle; pod?: Handle | undefined }): R {
  let r = steps.next();
  for (;;) {
    if (r.done) return r.value;
    const step = r.value;
    let value: unknown;
    try {
      if (step.call === 'settle' || step.call === 'alongside') {
        // synchronous calls never run in the background; the hook is the async form's
      } else if (step.call === 'sysctl') {
        sysctlSet(step.key, step.value, step.netns ? { netns: step.netns } : {});
      } else if (step.call === 'batch') {
        const h = step.side === 'host' ? handles.host : (handles.pod as Handle);
        const replies = h.batch(step.requests);
        const failed = batchFailure(step, replies);
        if (failed !== undefined) throw failed;
        value = replies;
      } else {
        const h = step.side === 'host' ? handles.host : (handles.pod as Handle);
        value = (h[step.call] as (...a: unknown[]) => unknown)(...step.args);
      }
    } catch (err) {
      r = steps.throw(err);
      continue;
    }
    r = steps.next(value);
  }
}

/** Runs a step sequence with each call's async form (the kernel waits happen on libuv's threadpool). */
async function runAsync<R>(
  steps: Steps<R>,
  handles: { host: Handle; pod?: Handle | Promise<Handle> | undefined },
  signal: AbortSignal | undefined,
  alongside?: ApplyAsyncOptions['alongside'],
): Promise<R> {
  const background: Promise<unknown>[] = [];
  let r = steps.next();
  try {
    for (;;) {
      if (r.done) return r.value;
      const step = r.value;
      let value: unknown;
      try {
        if (step.call === 'settle') {
          const out = await Promise.allSettled(background.splice(0));
          const failed = out.find((o) => o.status === 'rejected');
          if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
          r = steps.next(undefined);
          continue;
        }
        if (step.call === 'sysctl') {
          if (signal?.aborted) throw aborted('applyEndpoint', signal);
          const write = sysctlSetAsync(step.key, step.value, step.netns ? { netns: step.netns } : {});
          if (step.background) {
            write.catch(() => undefined); // looked at when settled
            background.push(write);
          } else await write;
          r = steps.next(undefined);
          continue;
        }
        if (step.call === 'alongside') {
          const work = alongside?.(step.host) ?? Promise.resolve();
          work.catch(() => undefined); // looked at when settled
          background.push(work);
          r = steps.next(undefined);
          continue;
        }
        if (step.call === 'batch') {
          const run = async () => {
            const h = step.side === 'host' ? handles.host : await (handles.pod as Handle | Promise<Handle>);
            const replies = await h.batchAsync(step.requests, { signal });
            const failed = batchFailure(step, replies);
            if (failed !== undefined) throw failed;
            return replies;
          };
          if (step.background) {
            const work = run();
            work.catch(() => undefined); // looked at when settled
            background.push(work);
            r = steps.next(undefined);
          } else r = steps.next(await run());
          continue;
        }
        const { side, call, args, undo } = step;
        const h = side === 'host' ? handles.host : await (handles.pod as Handle | Promise<Handle>);
        // The signal cancels calls not yet started; a rollback is never cancelled.
        value = await (h[`${call}Async`] as (...a: unknown[]) => Promise<unknown>)(
          ...withOptions(call, args, undo ? undefined : signal),
        );
      } catch (err) {
        r = steps.throw(err);
        continue;
      }
      r = steps.next(value);
    }
  } finally {
    // Nothing of this call runs on after it returned or threw.
    await Promise.allSettled(background);
  }
}

/** The async call's arguments: the sync arguments with the `mode` default filled in, then the options. */
function withOptions(call: NlCall['call'], args: unknown[], signal: AbortSignal | undefined): unknown[] {
  const takesMode = call === 'linkNew' || call === 'addrNew' || call === 'routeNew';
  const full = takesMode && args.length < 2 ? [...args, 'create'] : args;
  return [...full, { signal }];
}

/** Checks the plan and opens the pod's namespace (refusing the host's or the caller's own). */
function checkedPodNs(plan: EndpointPlan, options: ApplyOptions, op: string): Netns {
  checkPlan(plan, op);
  const podNs = Netns.open({ path: plan.netns });
  let caller: Netns | undefined;
  try {
    caller = Netns.current();
    if (podNs.sameAs(options.hostNetns ?? caller) || podNs.sameAs(caller)) {
      bad(
        op,
        `refusing to configure the host or the caller's own namespace (${plan.netns}) as a pod`,
        plan.netns,
      );
    }
    return podNs;
  } catch (err) {
    podNs.close();
    throw err;
  } finally {
    caller?.close();
  }
}

interface Opened {
  podNs: Netns;
  host: { handle: Handle } & Disposable;
  pod: Handle;
  close(): void;
}

function openedSet(podNs: Netns, host: { handle: Handle } & Disposable, pod: Handle): Opened {
  return {
    podNs,
    host,
    pod,
    close() {
      pod.close();
      host[Symbol.dispose]();
      podNs.close();
    },
  };
}

/** Checks the plan and opens what an apply needs; the caller closes it. */
function prepareApply(plan: EndpointPlan, options: ApplyOptions): Opened {
  const podNs = checkedPodNs(plan, options, 'applyEndpoint');
  let host: ({ handle: Handle } & Disposable) | undefined;
  try {
    // The caller's handle, else the shared one of the caller's namespace, else one of its own.
    host = options.hostHandle ? keepHandle(options.hostHandle) : leaseHandleIn(options.hostNetns);
    return openedSet(podNs, host, openIn(podNs));
  } catch (err) {
    host?.[Symbol.dispose]();
    podNs.close();
    throw err;
  }
}

/**
 * {@link prepareApply} for the async forms: a second shared handle for the caller's namespace, and the sockets
 * inside other namespaces made off the event loop (`Handle.openAsync`).
 */
async function prepareApplyAsync(plan: EndpointPlan, options: ApplyOptions): Promise<OpenedAsync> {
  const podNs = checkedPodNs(plan, options, 'applyEndpoint');
  let host: ({ handle: Handle } & Disposable) | undefined;
  try {
    host = options.hostHandle
      ? keepHandle(options.hostHandle)
      : await leaseAsyncHandleInAsync(options.hostNetns);
  } catch (err) {
    podNs.close();
    throw err;
  }
  // The pod's handle opens (a thread enters the namespace) while the veth is created on the host's: the
  // first pod request waits for it; a failure to open fails that step (and rolls back).
  const pod = Handle.openAsync(podNs);
  pod.catch(() => undefined); // looked at by the first pod step, or by close
  const h = host;
  return {
    podNs,
    host: h,
    pod,
    async close() {
      const opened = await pod.catch(() => undefined);
      opened?.close();
      h[Symbol.dispose]();
      podNs.close();
    },
  };
}

interface OpenedAsync {
  podNs: Netns;
  host: { handle: Handle } & Disposable;
  pod: Promise<Handle>;
  close(): Promise<void>;
}

/**
 * Creates a planned endpoint in three netlink round trips (requests that need no answer before the next
 * go in one datagram, `@datapath/netlink`'s `Handle.batch`): the veth with its peer straight in the pod namespace under
 * its final name (MTU and MAC on both ends, the host end up) and the host end's lookup; inside the pod
 * (through a handle bound to it, no further `setns`) the peer and `lo` up, addresses and routes; then the
 * host's addresses and routes to the pod. The host end's sysctls are written between the first two. Any
 * failure deletes the veth again (which removes everything made after it) before the error is
 * rethrown: nothing is left half-made. {@link applyEndpointAsync} is the same without blocking the
 * event loop.
 *
 * Before anything is created, the pod path must be an nsfs namespace other than the host one.
 *
 * Equivalent to: `ip link add lxc… type veth peer name tmp… netns POD` + `ip link set` / `ip addr add`
 * / `ip route add` on both sides + `sysctl -w net.ipv4.conf.lxc….rp_filter=0`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad plan, a path that is not a namespace, or the
 * host namespace given as the pod), `NotFound` (no such namespace), `AlreadyExists` (the host veth or
 * the ifname exists), any kernel error of a step (with its extended-ACK message); an `AggregateError`
 * of the step error and the rollback error in the unexpected case that the veth cannot be deleted again.
 * @example Creating and removing a pod endpoint
 * ```ts
 * import { applyEndpoint, planEndpoint, removeEndpoint } from '@datapath/netdev';
 * const plan = planEndpoint({
 *   containerId: 'c0ffee', netns: '/run/netns/pod1', addresses: ['10.244.1.5'],
 *   gateway: '10.244.1.1', mode: 'cilium',
 * });
 * const ep = applyEndpoint(plan);
 * console.log(ep.host.name, ep.container.index);
 * removeEndpoint(plan);
 * ```
 */
export function applyEndpoint(plan: EndpointPlan, options: ApplyOptions = {}): EndpointResult {
  const opened = prepareApply(plan, options);
  try {
    return runSync(applySteps(plan, opened.podNs, options), {
      host: opened.host.handle,
      pod: opened.pod,
    });
  } finally {
    opened.close();
  }
}

/**
 * The async form of {@link applyEndpoint}: the same plan, steps, rollback and errors, with every
 * netlink request waiting on libuv's threadpool instead of the event loop, so many endpoints can be
 * set up at once (each on its own pod handle; the host requests share one async host handle). Once the
 * veth exists, the pod's requests, the host's and the caller's `alongside` work run at the same time.
 * `options.signal` cancels the calls not yet started; what was made is rolled back.
 *
 * Equivalent to: {@link applyEndpoint}.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) as {@link applyEndpoint}; `Interrupted` (reason
 * `Aborted`) when the signal fired first.
 * @example Setting up pods in parallel
 * ```ts
 * import { applyEndpointAsync, planEndpoint } from '@datapath/netdev';
 * const plans = ['pod1', 'pod2'].map((id, i) =>
 *   planEndpoint({ containerId: id, netns: `/run/netns/${id}`, addresses: [`10.244.1.${5 + i}`],
 *     gateway: '10.244.1.1', mode: 'cilium' }),
 * );
 * const eps = await Promise.all(plans.map((p) => applyEndpointAsync(p)));
 * console.log(eps.map((e) => e.host.name));
 * ```
 */
export async function applyEndpointAsync(
  plan: EndpointPlan,
  options: ApplyAsyncOptions = {},
): Promise<EndpointResult> {
  if (options.signal?.aborted) throw aborted('applyEndpoint', options.signal);
  const opened = await prepareApplyAsync(plan, options);
  try {
    return await runAsync(
      applySteps(plan, opened.podNs, options),
      { host: opened.host.handle, pod: opened.pod },
      options.signal,
      options.alongside,
    );
  } finally {
    await opened.close();
  }
}

const keepHandle = (handle: Handle) => ({ handle, [Symbol.dispose]: () => {} });

function isPlan(ref: EndpointRef | EndpointPlan): ref is EndpointPlan {
  return typeof (ref as EndpointPlan).host === 'object' && (ref as EndpointPlan).host !== null;
}

/** The names to try and the pod leftovers to clean, checked before anything is touched. */
function removeTargets(
  ref: EndpointRef | EndpointPlan,
  op: string,
): { names: string[]; ifname: string; netns?: string } {
  if (isPlan(ref)) {
    return {
      names: [checkIfname(ref.host.name, op, 'host interface name')],
      ifname: checkIfname(ref.container.name, op, 'ifname'),
      netns: ref.netns,
    };
  }
  if (
    ref === null ||
    typeof ref !== 'object' ||
    typeof ref.containerId !== 'string' ||
    ref.containerId === ''
  ) {
    bad(op, 'containerId is required');
  }
  const ifname = checkIfname(ref.ifname ?? 'eth0', op, 'ifname');
  const modes: EndpointMode[] = ref.mode ? [ref.mode] : ['cilium', 'ptp'];
  return {
    names: modes.map((m) => hostIfname(ref.containerId, ifname, m)),
    ifname,
    ...(ref.netns === undefined ? {} : { netns: ref.netns }),
  };
}

/** Deletes the first host veth that exists; true when one did. */
function* removeHostSteps(names: string[]): Steps<boolean> {
  for (const name of names) {
    try {
      yield nl('host', 'linkDelete', { name });
      return true;
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
    }
  }
  return false;
}

/** Deletes a leftover pod veth named `ifname`; true when there was one. */
function* removePodSteps(ifname: string): Steps<boolean> {
  try {
    const link = (yield nl('pod', 'linkGet', { name: ifname })) as LinkMessage;
    if (link.info?.kind !== 'veth') return false;
    yield nl('pod', 'linkDelete', { index: link.index ?? 0 });
    return true;
  } catch (err) {
    if (isCode(err, 'NotFound')) return false;
    throw err;
  }
}

/** Opens the pod namespace of a leftover, or undefined when it is gone. */
function openPodNs(netns: string | undefined): Netns | undefined {
  if (netns === undefined || netns === '') return undefined;
  try {
    return Netns.open({ path: netns });
  } catch (err) {
    if (isCode(err, 'NotFound') || isCode(err, 'InvalidArgument')) return undefined; // the namespace is gone
    throw err;
  }
}

/**
 * Removes an endpoint by deleting its host veth (the kernel deletes the pod end and every address and
 * route on both ends with it). Idempotent: a missing veth or namespace is success. When the host end is
 * gone but `netns` still holds a veth named `ifname`, that one is deleted. {@link removeEndpointAsync}
 * is the same without blocking the event loop (deleting a veth waits for an RCU barrier in the kernel).
 *
 * Equivalent to: `ip link del lxc…` (and `ip -n POD link del eth0` for leftovers).
 *
 * @returns true when something was deleted, false when there was nothing to delete.
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad id or ifname), `PermissionDenied`, other kernel
 * errors than "not found".
 * @example Removing by container id
 * ```ts
 * import { removeEndpoint } from '@datapath/netdev';
 * removeEndpoint({ containerId: 'c0ffee', ifname: 'eth0', mode: 'cilium' });
 * ```
 */
export function removeEndpoint(ref: EndpointRef | EndpointPlan, options: RemoveOptions = {}): boolean {
  const { names, ifname, netns } = removeTargets(ref, 'removeEndpoint');
  {
    using host = options.hostHandle ? keepHandle(options.hostHandle) : leaseHandleIn(options.hostNetns);
    if (runSync(removeHostSteps(names), { host: host.handle })) return true;
  }
  const podNs = openPodNs(netns);
  if (podNs === undefined) return false;
  try {
    using pod = openIn(podNs);
    return runSync(removePodSteps(ifname), { host: pod, pod });
  } finally {
    podNs.close();
  }
}

/**
 * The async form of {@link removeEndpoint}: same arguments, result and errors; the kernel's wait (an
 * RCU barrier per deleted veth) happens on libuv's threadpool, not on the event loop.
 *
 * Equivalent to: {@link removeEndpoint}.
 *
 * @returns true when something was deleted, false when there was nothing to delete.
 * @throws `NetlinkError` (`@datapath/netlink`) as {@link removeEndpoint}; `Interrupted` (reason
 * `Aborted`) when the signal fired before the deletion was sent.
 * @example Removing pods in parallel
 * ```ts
 * import { removeEndpointAsync } from '@datapath/netdev';
 * await Promise.all(['pod1', 'pod2'].map((id) => removeEndpointAsync({ containerId: id, mode: 'cilium' })));
 * ```
 */
export async function removeEndpointAsync(
  ref: EndpointRef | EndpointPlan,
  options: RemoveOptions & RequestOptions = {},
): Promise<boolean> {
  const { names, ifname, netns } = removeTargets(ref, 'removeEndpoint');
  if (options.signal?.aborted) throw aborted('removeEndpoint', options.signal);
  {
    using host = options.hostHandle
      ? keepHandle(options.hostHandle)
      : await leaseAsyncHandleInAsync(options.hostNetns);
    if (await runAsync(removeHostSteps(names), { host: host.handle }, options.signal)) return true;
  }
  const podNs = openPodNs(netns);
  if (podNs === undefined) return false;
  try {
    using pod = await Handle.openAsync(podNs);
    return await runAsync(removePodSteps(ifname), { host: pod, pod }, options.signal);
  } finally {
    podNs.close();
  }
}
