// Agent mode's Node client (the fallback when the C shim, native/shim.c, is not built): forwards the
// invocation (CNI_* variables and stdin) to the datapath agent's unix socket in one HTTP/1.1 request, sends
// the confirmation the agent asks for (X-Cni-Confirm) before printing, prints the agent's answer and returns
// the exit status it gives (X-Cni-Exit). The same wire protocol as the shim, written on node:net by hand:
// node:http costs a short-lived process more start-up time than the exchange itself.
import { connect, type Socket } from 'node:net';
import { DEFAULT_AGENT_SOCKET } from '../config.js';

const VARS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

/** What to print and exit with. */
export interface Forwarded {
  stdout: string;
  status: number;
}

interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads Content-Length framed HTTP responses from a socket, one at a time. */
function responses(sock: Socket): () => Promise<Response> {
  let buf = Buffer.alloc(0);
  let waiting: (() => void) | undefined;
  let ended: Error | undefined;
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiting?.();
  });
  const stop = (err?: Error) => {
    ended = err ?? new Error('the agent closed the connection without an answer');
    waiting?.();
  };
  sock.on('end', () => stop());
  sock.on('error', stop);
  return async () => {
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(head[0]!.slice(9, 12));
        const headers: Record<string, string> = {};
        for (const line of head.slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] ?? -1);
        if (len >= 0 && buf.length >= end + 4 + len) {
          const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
          buf = buf.subarray(end + 4 + len);
          return { status, headers, body };
        }
      }
      if (ended) throw ended;
      await new Promise<void>((resolve) => {
        waiting = resolve;
      });
      waiting = undefined;
    }
  };
}

const cniError = (version: string, code: number, msg: string, details: string): Forwarded => ({
  stdout: `${JSON.stringify({ cniVersion: version, code, msg, details })}\n`,
  status: 1,
});

/**
 * Forwards one invocation to the agent and returns what to print and the exit status. Never throws: an
 * agent that cannot be reached is CNI error 11 (50 for STATUS).
 */
export async function forwardToAgent(
  env: Readonly<Record<string, string | undefined>>,
  stdin: string,
  config: { agentSocket?: unknown; cniVersion?: unknown },
): Promise<Forwarded> {
  const socketPath = typeof config.agentSocket === 'string' ? config.agentSocket : DEFAULT_AGENT_SOCKET;
  const version = typeof config.cniVersion === 'string' ? config.cniVersion : '1.1.0';
  const down = env.CNI_COMMAND === 'STATUS' ? 50 : 11;
  const unreachable = `datapath agent not reachable at ${socketPath} (is \`agent serve\` running?)`;
  const fwdEnv: Record<string, string> = {};
  for (const k of VARS) if (env[k] !== undefined) fwdEnv[k] = env[k];
  const body = JSON.stringify({ env: fwdEnv, stdin });
  const sock = connect(socketPath);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
  } catch (err) {
    sock.destroy();
    return cniError(version, down, unreachable, (err as Error).message);
  }
  const next = responses(sock);
  try {
    sock.write(
      `POST /v1/cni HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const r = await next();
    const exit = r.headers['x-cni-exit'];
    if (r.status !== 200 || exit === undefined)
      return cniError(version, 999, `datapath agent at ${socketPath} answered HTTP ${r.status}`, r.body);
    const confirm = r.headers['x-cni-confirm'];
    if (confirm !== undefined) {
      // Confirm before printing: an ADD whose lease expired meanwhile (the pod is gone again) must fail.
      sock.write(`POST ${confirm} HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\n\r\n`);
      const c = await next();
      if (c.status !== 200)
        return cniError(
          version,
          11,
          `datapath agent did not confirm the ADD (HTTP ${c.status}): its lease expired`,
          c.body,
        );
    }
    return { stdout: r.body, status: Number(exit) };
  } catch (err) {
    return cniError(version, down, unreachable, (err as Error).message);
  } finally {
    sock.destroy();
  }
}
