// TCP and UDP sockets inside a network namespace, as Node's own net.Server, net.Socket and dgram.Socket.
// The socket is created inside the namespace (the addon's short-lived thread; without the addon, a
// synchronous Netns.run window) and bound there; libuv then adopts it by fd. A socket stays in the
// namespace it was created in, so everything after creation (bind, listen, connect, I/O) runs on the
// main thread as usual, and the main thread's own namespace never changes. DNS lookups made for a
// connect happen in the main thread's (host) namespace.
import type * as dgram from 'node:dgram';
import type * as net from 'node:net';
import { errnoError, NetlinkError } from '../errors.js';
import { rawBind, rawClose, rawSetsockoptInt, rawSocket } from './libc.js';
import { nativeAddon } from './native.js';

// node:net and node:dgram are loaded on first use: a CNI plugin that never opens a socket in a namespace
// does not pay for them (node:net pulls in node:stream).
const netModule = (): typeof net => process.getBuiltinModule('node:net') as typeof net;
const dgramModule = (): typeof dgram => process.getBuiltinModule('node:dgram') as typeof dgram;
const isIPv6 = (address: string): boolean => netModule().isIPv6(address);

/** Node's socket types, for the namespace handle's signatures. */
export type { Socket as DgramSocket, SocketOptions, SocketType } from 'node:dgram';
export type { Server, ServerOpts, Socket } from 'node:net';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

/** What this module needs of a namespace handle. */
export interface NsTarget {
  readonly fd: number;
  readonly path: string;
  run<T>(fn: () => T): T;
}

function sockaddr(family: number, address: string, port: number, op: string): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new NetlinkError('InvalidArgument', `${op}: invalid port ${port}`, { op });
  if (family === AF_INET) {
    if (!netModule().isIPv4(address))
      throw new NetlinkError('InvalidArgument', `${op}: ${JSON.stringify(address)} is not an IPv4 address`, {
        op,
      });
    const sa = new Uint8Array(16);
    const v = new DataView(sa.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port, false);
    sa.set(address.split('.').map(Number), 4);
    return sa;
  }
  if (!isIPv6(address))
    throw new NetlinkError('InvalidArgument', `${op}: ${JSON.stringify(address)} is not an IPv6 address`, {
      op,
    });
  const sa = new Uint8Array(28);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET6, true);
  v.setUint16(2, port, false);
  sa.set(ipv6Bytes(address), 8);
  return sa;
}

function ipv6Bytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  let text = address;
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4?.[1]) {
    const b = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}

/** A socket created inside `ns` (non-blocking, close-on-exec); throws a typed error. */
function socketIn(ns: NsTarget, domain: number, type: number, op: string): number {
  const t = type | SOCK_NONBLOCK | SOCK_CLOEXEC;
  const addon = nativeAddon;
  const fd =
    addon !== undefined ? addon.socketIn(ns.fd, domain, t, 0) : ns.run(() => rawSocket(domain, t, 0));
  if (fd < 0)
    throw errnoError(-fd, {
      op,
      syscall: 'setns+socket',
      target: ns.path,
      privilege: 'CAP_SYS_ADMIN, or root',
    });
  return fd;
}

/** A socket made in `ns` and bound to `address`:`port`; closed again when binding fails. */
function boundSocket(ns: NsTarget, type: number, address: string, port: number, op: string): number {
  const family = isIPv6(address) ? AF_INET6 : AF_INET;
  const sa = sockaddr(family, address, port, op);
  const fd = socketIn(ns, family, type, op);
  if (type === SOCK_STREAM) rawSetsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (family === AF_INET6 && address === '::') rawSetsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
  const r = rawBind(fd, sa);
  if (r < 0) {
    rawClose(fd);
    throw errnoError(-r, { op, syscall: 'bind', target: `${address}:${port} in ${ns.path}` });
  }
  return fd;
}

/** Options of a listen inside a namespace (the subset of `server.listen` that has a meaning here). */
export interface NsListenOptions {
  /** Port; 0 or omitted = any. */
  port?: number | undefined;
  /** Address to bind inside the namespace; default `::` (both families). */
  host?: string | undefined;
  /** Listen backlog. */
  backlog?: number | undefined;
}

type ListenArgs = [NsListenOptions | number | undefined, ...unknown[]];

function listenOptions(args: ListenArgs): { options: NsListenOptions; cb?: () => void } {
  const cb = args.find((a): a is () => void => typeof a === 'function');
  const [first, second, third] = args;
  if (first !== null && typeof first === 'object') return { options: first, ...(cb ? { cb } : {}) };
  return {
    options: {
      port: typeof first === 'number' ? first : undefined,
      host: typeof second === 'string' ? second : undefined,
      backlog: typeof second === 'number' ? second : typeof third === 'number' ? third : undefined,
    },
    ...(cb ? { cb } : {}),
  };
}

/** A `net.Server` whose `listen()` binds a socket made inside `ns`. */
export function serverIn(
  ns: NsTarget,
  options: net.ServerOpts,
  listener?: (s: net.Socket) => void,
): net.Server {
  const server = netModule().createServer(options, listener);
  const listen = server.listen.bind(server) as (...a: unknown[]) => net.Server;
  server.listen = ((...args: ListenArgs) => {
    const { options: o, cb } = listenOptions(args);
    let fd: number;
    try {
      fd = boundSocket(ns, SOCK_STREAM, o.host ?? '::', o.port ?? 0, 'netnsListen');
    } catch (err) {
      process.nextTick(() => server.emit('error', err));
      return server;
    }
    // From here on libuv owns the fd and closes it with the server.
    return cb === undefined ? listen({ fd, backlog: o.backlog }) : listen({ fd, backlog: o.backlog }, cb);
  }) as typeof server.listen;
  return server;
}

/** Options of a TCP connect from inside a namespace. */
export interface NsConnectOptions {
  /** Destination port. */
  port: number;
  /** Destination host (an address, or a name resolved in the host namespace); default `localhost`. */
  host?: string | undefined;
  /** Local address to bind inside the namespace before connecting. */
  localAddress?: string | undefined;
  /** Idle timeout in ms (`socket.setTimeout`). */
  timeout?: number | undefined;
}

/** A `net.Socket` connecting from a socket made inside `ns`. */
export function connectIn(ns: NsTarget, options: NsConnectOptions, onConnect?: () => void): net.Socket {
  const op = 'netnsConnect';
  if (options === null || typeof options !== 'object' || !Number.isInteger(options.port))
    throw new NetlinkError('InvalidArgument', `${op}: options.port is required`, { op });
  const host = options.host ?? 'localhost';
  const v6 = isIPv6(host) || (options.localAddress !== undefined && isIPv6(options.localAddress));
  const fd =
    options.localAddress !== undefined
      ? boundSocket(ns, SOCK_STREAM, options.localAddress, 0, op)
      : socketIn(ns, v6 ? AF_INET6 : AF_INET, SOCK_STREAM, op);
  // manualStart: do not read before the connect completes (an unconnected socket reads as EOF).
  const socket = new (netModule().Socket)({ fd, manualStart: true } as net.SocketConstructorOpts);
  if (options.timeout !== undefined) socket.setTimeout(options.timeout);
  socket.connect({ port: options.port, host, family: v6 ? 6 : 4 }, onConnect);
  return socket;
}

/** A `dgram.Socket` whose `bind()` (explicit, or implicit on the first send) binds inside `ns`. */
export function udpIn(ns: NsTarget, options: dgram.SocketType | dgram.SocketOptions): dgram.Socket {
  const o = typeof options === 'string' ? { type: options } : options;
  const socket = dgramModule().createSocket(o);
  const bind = socket.bind.bind(socket) as (...a: unknown[]) => dgram.Socket;
  socket.bind = ((...args: unknown[]) => {
    const cb = args.find((a): a is () => void => typeof a === 'function');
    const [first, second] = args;
    const opts =
      first !== null && typeof first === 'object'
        ? (first as dgram.BindOptions)
        : {
            port: typeof first === 'number' ? first : 0,
            address: typeof second === 'string' ? second : undefined,
          };
    const address = opts.address ?? (o.type === 'udp6' ? '::' : '0.0.0.0');
    let fd: number;
    try {
      fd = boundSocket(ns, SOCK_DGRAM, address, opts.port ?? 0, 'netnsBind');
    } catch (err) {
      process.nextTick(() => socket.emit('error', err));
      return socket;
    }
    return cb === undefined ? bind({ fd }) : bind({ fd }, cb);
  }) as typeof socket.bind;
  return socket;
}
