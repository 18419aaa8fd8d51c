// Agent mode's Node client (the fallback when the C shim, native/shim.c, is not built): forwards the
// invocation (CNI_* variables and stdin) to the datapath agent's unix socket in one HTTP/1.1 request, sends
// the confirmation the agent asks for (X-Cni-Confirm) before printing, prints the agent's answer and returns
// the exit status it gives (X-Cni-Exit). The same wire protocol as the shim, on node:net with
// @datapath/http's framing (no Node built-in of its own): node:http costs a short-lived process more
// start-up time than the exchange itself.
import { connect } from 'node:net';
import { exchange, formatRequest, HttpError, type HttpHeaders } from '@datapath/http';
import { DEFAULT_AGENT_SOCKET } from '../config.js';

const VARS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

/** What to print and exit with. */
export interface Forwarded {
  stdout: string;
  status: number;
}

/** A header sent once (a repeated one counts as missing). */
const single = (headers: HttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return typeof v === 'string' ? v : undefined;
};

const cniError = (version: string, code: number, msg: string, details: string): Forwarded => ({
  stdout: `${JSON.stringify({ cniVersion: version, code, msg, details })}\n`,
  status: 1,
});

/**
 * Forwards one invocation to the agent and returns what to print and the exit status. Never throws: an
 * agent that cannot be reached is CNI error 11 (50 for STATUS); one that answers an HTTP error, or something
 * that is not an HTTP/1.1 answer with a length, is 999.
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
  try {
    const { response: r } = await exchange(
      sock,
      formatRequest('POST', '/v1/cni', { host: 'agent', body, contentType: 'application/json' }),
    );
    const exit = single(r.headers, 'x-cni-exit');
    if (r.status !== 200 || exit === undefined)
      return cniError(version, 999, `datapath agent at ${socketPath} answered HTTP ${r.status}`, r.body);
    const confirm = single(r.headers, 'x-cni-confirm');
    if (confirm !== undefined) {
      // Confirm before printing: an ADD whose lease expired meanwhile (the pod is gone again) must fail.
      const { response: c } = await exchange(
        sock,
        formatRequest('POST', confirm, { host: 'agent', body: '' }),
      );
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
    // An answer that is not HTTP/1.1 with a length (or a confirmation path that is not a path): the agent is
    // there but speaks something else.
    if (err instanceof HttpError && err.code !== 'Unavailable')
      return cniError(version, 999, `datapath agent at ${socketPath} answered badly`, err.message);
    return cniError(version, down, unreachable, (err as Error).message);
  } finally {
    sock.destroy();
  }
}
