/**
 * The credentials of the process at the other end of a unix socket: `getsockopt(SO_PEERCRED)` through koffi
 * (Node has no binding for it). The kernel records them at connect() time, so a peer cannot change them
 * afterwards (setuid after connecting does not help it).
 */
import type { Socket } from 'node:net';
import koffi from 'koffi';
import { AgentError } from '../errors.js';

/** `struct ucred` of a unix socket peer. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

type GetSockOpt = (fd: number, level: number, name: number, val: Uint8Array, len: number[]) => number;
let getsockopt: GetSockOpt | undefined;

function bind(): GetSockOpt {
  if (getsockopt === undefined) {
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func(
      'int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)',
    ) as unknown as GetSockOpt;
  }
  return getsockopt;
}

/**
 * Reads the peer credentials of a connected unix socket (a node:net socket of a unix-socket server).
 * @throws AgentError `NotSupported` when the socket has no file descriptor (not a unix socket),
 * `PermissionDenied`-free: a failing getsockopt is `DatapathFailed`.
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw new AgentError('NotSupported', 'peer credentials: the connection has no file descriptor');
  const buf = new Uint8Array(12);
  const len = [12];
  const r = bind()(fd, SOL_SOCKET, SO_PEERCRED, buf, len);
  if (r !== 0 || len[0] !== 12)
    throw new AgentError('DatapathFailed', `getsockopt(SO_PEERCRED) on fd ${fd} failed (${koffi.errno()})`);
  const v = new DataView(buf.buffer);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}
