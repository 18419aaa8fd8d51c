import { tryParseCidr, tryParseIp } from '@datapath/ip';
import * as z from 'zod/mini';
import { CniError, CniErrorCode } from './errors.js';
import { type CniVersion, compareVersions, isCniVersion } from './version.js';

/** An interface in a result (1.1 shape; `mtu`, `socketPath`, `pciID` are 1.1-only). */
export interface CniInterface {
  /** Interface name. */
  name: string;
  /** Hardware address, `aa:bb:cc:dd:ee:ff`. */
  mac?: string;
  /** MTU (1.1.0). */
  mtu?: number;
  /** The netns path for an interface inside the container; absent for host interfaces. */
  sandbox?: string;
  /** A vhost-user or similar socket path (1.1.0). */
  socketPath?: string;
  /** The PCI id of a device (1.1.0). */
  pciID?: string;
}

/** An IP configuration in a result. */
export interface CniIpConfig {
  /** `address/prefix`. */
  address: string;
  /** The default gateway of this address, when there is one. */
  gateway?: string;
  /** Index into `interfaces` of the interface the address is on. */
  interface?: number;
}

/** A route in a result (1.1 shape; everything but `dst` and `gw` is 1.1-only). */
export interface CniRoute {
  /** Destination `address/prefix`. */
  dst: string;
  /** Next hop; absent for a default route via the IP config's gateway. */
  gw?: string;
  /** Route MTU (1.1.0). */
  mtu?: number;
  /** TCP advertised MSS (1.1.0). */
  advmss?: number;
  /** Route priority (1.1.0). */
  priority?: number;
  /** Routing table (1.1.0). */
  table?: number;
  /** Route scope: 0 universe, 253 link, 254 host (1.1.0). */
  scope?: number;
}

/** DNS settings in a result or config. */
export interface CniDns {
  /** Name server addresses in priority order. */
  nameservers?: string[];
  /** The local domain. */
  domain?: string;
  /** Search domains in priority order. */
  search?: string[];
  /** resolver options. */
  options?: string[];
}

/**
 * A result in the newest shape (1.1.0), the form every handler returns and every converter goes through.
 * {@link formatResult} writes it in any other version.
 */
export interface CniResult {
  /** The version the result was parsed from or is meant for; the formatter overrides it. */
  cniVersion?: string;
  /** Interfaces created or configured. */
  interfaces?: CniInterface[];
  /** IP configurations. */
  ips?: CniIpConfig[];
  /** Routes. */
  routes?: CniRoute[];
  /** DNS settings. */
  dns?: CniDns;
}

/** A route as written before 1.1.0: destination and optional next hop. */
export interface RouteV04 {
  /** Destination `address/prefix`. */
  dst: string;
  /** Next hop. */
  gw?: string;
}

/** An interface as written before 1.1.0. */
export interface InterfaceV04 {
  /** Interface name. */
  name: string;
  /** Hardware address. */
  mac?: string;
  /** The netns path for an interface inside the container. */
  sandbox?: string;
}

/** An IP configuration as written for 0.3.x and 0.4.0, with its family. */
export interface IpConfigV04 extends CniIpConfig {
  /** `"4"` or `"6"`. */
  version: '4' | '6';
}

/** An IP configuration of a 0.1.0 / 0.2.0 result. */
export interface IpConfigV02 {
  /** `address/prefix`. */
  ip: string;
  /** Gateway address. */
  gateway?: string;
  /** Routes of this family. */
  routes?: RouteV04[];
}

/** A result as written for 0.1.0 and 0.2.0. */
export interface ResultV02 {
  /** `0.1.0` or `0.2.0`. */
  cniVersion: '0.1.0' | '0.2.0';
  /** The first IPv4 configuration. */
  ip4?: IpConfigV02;
  /** The first IPv6 configuration. */
  ip6?: IpConfigV02;
  /** DNS settings. */
  dns?: CniDns;
}

/** A result as written for 0.3.0, 0.3.1 and 0.4.0 (`ips[].version` present). */
export interface ResultV04 {
  /** `0.3.0`, `0.3.1` or `0.4.0`. */
  cniVersion: '0.3.0' | '0.3.1' | '0.4.0';
  /** Interfaces (`name`, `mac`, `sandbox`). */
  interfaces?: InterfaceV04[];
  /** IP configurations with their family. */
  ips?: IpConfigV04[];
  /** Routes (`dst`, `gw`). */
  routes?: RouteV04[];
  /** DNS settings. */
  dns?: CniDns;
}

/** A result as written for 1.0.0. */
export interface ResultV10 {
  /** `1.0.0`. */
  cniVersion: '1.0.0';
  /** Interfaces (`name`, `mac`, `sandbox`). */
  interfaces?: InterfaceV04[];
  /** IP configurations. */
  ips?: CniIpConfig[];
  /** Routes (`dst`, `gw`). */
  routes?: RouteV04[];
  /** DNS settings. */
  dns?: CniDns;
}

/** A result as written for 1.1.0. */
export interface ResultV11 extends CniResult {
  /** `1.1.0`. */
  cniVersion: '1.1.0';
}

/** A result in the wire shape of one spec version. */
export type VersionedResult = ResultV02 | ResultV04 | ResultV10 | ResultV11;

// ---- wire-shape schemas -----------------------------------------------------------------------

type Obj = typeof z.object;
/** The four wire shapes of a result: 0.1/0.2, 0.3/0.4, 1.0, 1.1. */
export type Shape = 'v02' | 'v04' | 'v10' | 'v11';

// Schemas are built on first use, one shape at a time: building zod schemas costs start-up time, and a
// CNI plugin process is short-lived (it usually needs one shape, once).
function build(obj: Obj, shape: Shape) {
  const ip = z.string().check(z.refine((s) => tryParseIp(s) !== undefined, 'not an IP address'));
  const cidr = z.string().check(z.refine((s) => tryParseCidr(s) !== undefined, 'not an address/prefix'));
  const mac = z.string().check(z.regex(/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/, 'not a MAC address'));
  const uint = z.int().check(z.minimum(0));
  const dns = obj({
    nameservers: z.optional(z.array(ip)),
    domain: z.optional(z.string()),
    search: z.optional(z.array(z.string())),
    options: z.optional(z.array(z.string())),
  });
  const route04 = obj({ dst: cidr, gw: z.optional(ip) });
  const iface04 = obj({ name: z.string(), mac: z.optional(mac), sandbox: z.optional(z.string()) });
  const ipc10 = obj({ address: cidr, gateway: z.optional(ip), interface: z.optional(uint) });
  switch (shape) {
    case 'v02': {
      const ip02 = obj({ ip: cidr, gateway: z.optional(ip), routes: z.optional(z.array(route04)) });
      return obj({
        cniVersion: z.string(),
        ip4: z.optional(ip02),
        ip6: z.optional(ip02),
        dns: z.optional(dns),
      });
    }
    case 'v04':
      return obj({
        cniVersion: z.string(),
        interfaces: z.optional(z.array(iface04)),
        ips: z.optional(
          z.array(
            obj({
              version: z.enum(['4', '6']),
              address: cidr,
              gateway: z.optional(ip),
              interface: z.optional(uint),
            }),
          ),
        ),
        routes: z.optional(z.array(route04)),
        dns: z.optional(dns),
      });
    case 'v10':
      return obj({
        cniVersion: z.string(),
        interfaces: z.optional(z.array(iface04)),
        ips: z.optional(z.array(ipc10)),
        routes: z.optional(z.array(route04)),
        dns: z.optional(dns),
      });
    case 'v11':
      return obj({
        cniVersion: z.string(),
        interfaces: z.optional(
          z.array(
            obj({
              name: z.string(),
              mac: z.optional(mac),
              mtu: z.optional(uint),
              sandbox: z.optional(z.string()),
              socketPath: z.optional(z.string()),
              pciID: z.optional(z.string()),
            }),
          ),
        ),
        ips: z.optional(z.array(ipc10)),
        routes: z.optional(
          z.array(
            obj({
              dst: cidr,
              gw: z.optional(ip),
              mtu: z.optional(uint),
              advmss: z.optional(uint),
              priority: z.optional(uint),
              table: z.optional(uint),
              scope: z.optional(uint),
            }),
          ),
        ),
        dns: z.optional(dns),
      });
  }
}

// Parsing is lenient about unknown keys (they are dropped, as libcni does); validation is strict.
const cache = new Map<string, ReturnType<typeof build>>();
/** The zod schema of a wire shape, strict (unknown keys fail) or lenient (dropped); built on first use. */
export function schemaFor(strict: boolean, shape: Shape) {
  const key = `${strict}${shape}`;
  let s = cache.get(key);
  if (s === undefined) {
    s = build(strict ? (z.strictObject as unknown as Obj) : z.object, shape);
    cache.set(key, s);
  }
  return s;
}

// ---- quick shape check ------------------------------------------------------------------------
// The results plugins print and runtimes send back as prevResult are nearly always plain: no DNS, no
// unknown keys. quickShape says "exactly the strict wire shape" for those without building the zod schema
// (which costs a short-lived plugin process about a millisecond); for anything else it says nothing and
// the schema decides, and words the errors. test/result.test.ts holds it to the schema's answers.

const MAC = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;
type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === 'string';
const uintOk: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const ipOk: Check = (v) => typeof v === 'string' && tryParseIp(v) !== undefined;
const cidrOk: Check = (v) => typeof v === 'string' && tryParseCidr(v) !== undefined;
const macOk: Check = (v) => typeof v === 'string' && MAC.test(v);

/** A plain object whose keys are all in `fields` (no undefined values), each value passing its check. */
function fits(o: unknown, fields: Record<string, Check>, required: readonly string[]): boolean {
  if (typeof o !== 'object' || o === null || Array.isArray(o) || Object.hasOwn(o, '__proto__')) return false;
  const r = o as Record<string, unknown>;
  for (const k of required) if (!(k in r)) return false;
  for (const k of Object.keys(r)) {
    const check = fields[k];
    if (check === undefined || r[k] === undefined || !check(r[k])) return false;
  }
  return true;
}
const listOf =
  (fields: Record<string, Check>, required: readonly string[]): Check =>
  (v) =>
    Array.isArray(v) && v.every((x) => fits(x, fields, required));

const IFACE04 = { name: str, mac: macOk, sandbox: str };
const ROUTE04 = { dst: cidrOk, gw: ipOk };
const IPC10 = { address: cidrOk, gateway: ipOk, interface: uintOk };
const QUICK: Partial<Record<Shape, Record<string, Check>>> = {
  v04: {
    cniVersion: str,
    interfaces: listOf(IFACE04, ['name']),
    ips: listOf({ ...IPC10, version: (v) => v === '4' || v === '6' }, ['version', 'address']),
    routes: listOf(ROUTE04, ['dst']),
  },
  v10: {
    cniVersion: str,
    interfaces: listOf(IFACE04, ['name']),
    ips: listOf(IPC10, ['address']),
    routes: listOf(ROUTE04, ['dst']),
  },
  v11: {
    cniVersion: str,
    interfaces: listOf({ ...IFACE04, mtu: uintOk, socketPath: str, pciID: str }, ['name']),
    ips: listOf(IPC10, ['address']),
    routes: listOf(
      { ...ROUTE04, mtu: uintOk, advmss: uintOk, priority: uintOk, table: uintOk, scope: uintOk },
      ['dst'],
    ),
  },
};

/** True when `json` has exactly the strict `shape` (so both schemas would return it unchanged). */
export function quickShape(json: unknown, shape: Shape): boolean {
  const fields = QUICK[shape];
  return fields !== undefined && fits(json, fields, ['cniVersion']);
}

/** The schema's safeParse, skipped (the value returned as is) when quickShape can tell. */
function parseShape(strict: boolean, shape: Shape, json: unknown) {
  if (quickShape(json, shape))
    return { success: true as const, data: json as z.infer<ReturnType<typeof build>> };
  return schemaFor(strict, shape).safeParse(json);
}

function shapeOf(version: CniVersion): Shape {
  if (compareVersions(version, '0.3.0') < 0) return 'v02';
  if (compareVersions(version, '1.0.0') < 0) return 'v04';
  return version === '1.0.0' ? 'v10' : 'v11';
}

function checkIndexes(r: CniResult, version: string): void {
  const n = r.interfaces?.length ?? 0;
  for (const c of r.ips ?? []) {
    if (c.interface !== undefined && c.interface >= n) {
      throw new CniError(
        CniErrorCode.DecodingFailure,
        `invalid ${version} result: ips[].interface ${c.interface} does not name one of ${n} interfaces`,
      );
    }
  }
}

function decodeFailure(version: string, error: z.core.$ZodError): CniError {
  return new CniError(
    CniErrorCode.DecodingFailure,
    `invalid ${version} result`,
    z.prettifyError(error).replaceAll('\n', '; '),
  );
}

function requireVersion(version: unknown): CniVersion {
  if (!isCniVersion(version)) {
    throw new CniError(CniErrorCode.IncompatibleVersion, `unsupported result version "${String(version)}"`);
  }
  return version;
}

/**
 * Checks that `json` has exactly the wire shape of a `version` result (no unknown or later-version
 * fields, valid addresses, interface indexes in range) and returns it typed.
 *
 * @throws {@link CniError} code 6 (decoding failure) with the problems in `details`; code 1 for an unknown
 * version.
 * @example Validating what a plugin printed
 * ```ts
 * import { validateResultShape } from '@datapath/cni';
 * validateResultShape({ cniVersion: '0.2.0', ip4: { ip: '10.244.0.2/24' } }, '0.2.0');
 * ```
 */
export function validateResultShape(json: unknown, version: string): VersionedResult {
  const v = requireVersion(version);
  const parsed = parseShape(true, shapeOf(v), json);
  if (!parsed.success) throw decodeFailure(v, parsed.error);
  if ((parsed.data as { cniVersion: string }).cniVersion !== v) {
    throw new CniError(CniErrorCode.DecodingFailure, `invalid ${v} result: cniVersion is not "${v}"`);
  }
  if (shapeOf(v) !== 'v02') checkIndexes(parsed.data as CniResult, v);
  if (shapeOf(v) === 'v04') {
    for (const c of (parsed.data as ResultV04).ips ?? []) {
      if (c.version !== String(tryParseCidr(c.address)?.prefix.family)) {
        throw new CniError(
          CniErrorCode.DecodingFailure,
          `invalid ${v} result: ${c.address} is not IPv${c.version}`,
        );
      }
    }
  }
  return parsed.data as VersionedResult;
}

/**
 * Parses a result of any supported version (its own `cniVersion`, or `version` when it has none, as
 * libcni does for a `prevResult`) into the newest shape.
 *
 * @throws {@link CniError} code 6 (decoding failure) for a malformed result, code 1 for an unknown version.
 * @example Reading a 0.2.0 result
 * ```ts
 * import { parseResult } from '@datapath/cni';
 * const r = parseResult({ cniVersion: '0.2.0', ip4: { ip: '10.244.0.2/24', gateway: '10.244.0.1' } });
 * console.log(r.ips?.[0]?.address); // '10.244.0.2/24'
 * ```
 */
export function parseResult(json: unknown, version?: string): CniResult {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CniError(CniErrorCode.DecodingFailure, 'invalid result: not a JSON object');
  }
  const own = (json as { cniVersion?: unknown }).cniVersion;
  const v = requireVersion(own === undefined || own === '' ? (version ?? '0.1.0') : own);
  const parsed = parseShape(false, shapeOf(v), { ...json, cniVersion: v });
  if (!parsed.success) throw decodeFailure(v, parsed.error);
  const data = parsed.data;
  switch (shapeOf(v)) {
    case 'v02':
      return fromV02(data as ResultV02);
    case 'v04': {
      const r = data as ResultV04;
      const out: CniResult = pick({
        ...r,
        cniVersion: v,
        ips: r.ips?.map(({ version: _v, ...rest }) => rest),
      });
      checkIndexes(out, v);
      return out;
    }
    default:
      checkIndexes(data as CniResult, v);
      return data as CniResult;
  }
}

function fromV02(r: ResultV02): CniResult {
  const ips: CniIpConfig[] = [];
  const routes: CniRoute[] = [];
  for (const c of [r.ip4, r.ip6]) {
    if (c === undefined) continue;
    ips.push(pick({ address: c.ip, gateway: c.gateway }));
    for (const rt of c.routes ?? []) routes.push(pick({ dst: rt.dst, gw: rt.gw }));
  }
  return pick({
    cniVersion: r.cniVersion,
    ips: ips.length ? ips : undefined,
    routes: routes.length ? routes : undefined,
    dns: r.dns,
  });
}

type Compact<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/** Drops the keys whose value is undefined (exact optional properties, and no `"x": null` in JSON). */
function pick<T extends object>(o: T): Compact<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as Compact<T>;
}

function dnsOut(dns: CniDns | undefined): CniDns | undefined {
  if (dns === undefined) return undefined;
  const d = pick({
    nameservers: dns.nameservers,
    domain: dns.domain,
    search: dns.search,
    options: dns.options,
  });
  return Object.keys(d).length ? d : undefined;
}

/**
 * Writes a result in the wire shape of `version`: drops what the version cannot express (1.1-only
 * interface and route fields before 1.1.0; interfaces and all but the first address per family before
 * 0.3.0, with routes split by family) and adds what it requires (`ips[].version` for 0.3.x/0.4.0).
 *
 * @throws {@link CniError} code 1 for a version this library does not speak.
 * @example Writing a result for a 0.4.0 runtime
 * ```ts
 * import { formatResult } from '@datapath/cni';
 * const out = formatResult({ ips: [{ address: '10.244.0.2/32', gateway: '10.244.0.1' }] }, '0.4.0');
 * // { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.244.0.2/32', gateway: '10.244.0.1' }] }
 * ```
 */
export function formatResult(result: CniResult, version: string): VersionedResult {
  const v = requireVersion(version);
  const dns = dnsOut(result.dns);
  const shape = shapeOf(v);
  if (shape === 'v02') {
    const out: ResultV02 = { cniVersion: v as ResultV02['cniVersion'] };
    for (const fam of [4, 6] as const) {
      const c = result.ips?.find((x) => tryParseCidr(x.address)?.prefix.family === fam);
      if (c === undefined) continue;
      const routes = (result.routes ?? [])
        .filter((r) => tryParseCidr(r.dst)?.prefix.family === fam)
        .map((r) => pick({ dst: r.dst, gw: r.gw }));
      out[fam === 4 ? 'ip4' : 'ip6'] = pick({
        ip: c.address,
        gateway: c.gateway,
        routes: routes.length ? routes : undefined,
      });
    }
    if (dns) out.dns = dns;
    return out;
  }
  const interfaces =
    shape === 'v11'
      ? result.interfaces?.map((i) =>
          pick({
            name: i.name,
            mac: i.mac,
            mtu: i.mtu,
            sandbox: i.sandbox,
            socketPath: i.socketPath,
            pciID: i.pciID,
          }),
        )
      : result.interfaces?.map((i) => pick({ name: i.name, mac: i.mac, sandbox: i.sandbox }));
  const routes =
    shape === 'v11'
      ? result.routes?.map((r) =>
          pick({
            dst: r.dst,
            gw: r.gw,
            mtu: r.mtu,
            advmss: r.advmss,
            priority: r.priority,
            table: r.table,
            scope: r.scope,
          }),
        )
      : result.routes?.map((r) => pick({ dst: r.dst, gw: r.gw }));
  const ips =
    shape === 'v04'
      ? result.ips?.map((c) =>
          pick({
            version: String(tryParseCidr(c.address)?.prefix.family) as '4' | '6',
            address: c.address,
            gateway: c.gateway,
            interface: c.interface,
          }),
        )
      : result.ips?.map((c) => pick({ address: c.address, gateway: c.gateway, interface: c.interface }));
  return pick({ cniVersion: v, interfaces, ips, routes, dns }) as VersionedResult;
}

/**
 * Converts a result of any supported version into another version (through the newest shape).
 *
 * @throws {@link CniError} code 6 for a malformed input, code 1 for an unknown version.
 * @example Converting a delegate's 0.2.0 answer for a 1.0.0 runtime
 * ```ts
 * import { convertResult } from '@datapath/cni';
 * const r = convertResult({ cniVersion: '0.2.0', ip4: { ip: '10.244.0.2/24' } }, '1.0.0');
 * ```
 */
export function convertResult(json: unknown, toVersion: string): VersionedResult {
  return formatResult(parseResult(json), toVersion);
}
