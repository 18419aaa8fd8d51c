// Entry point of the datapath-cni binary (bundled into one file by scripts/bundle.mjs). The handlers are
// imported on first use: VERSION and argument errors never load the netlink FFI, and a failure to load it
// is reported as CNI error JSON like any other error. A config with `"mode": "agent"` is not handled here
// at all: it is forwarded to the datapath agent (src/sys/agent-forward.ts; the C shim does the same
// without starting Node).
import { processIo, runPlugin } from '@datapath/cni';
import { pluginInfo } from './info.js';

const impl = async () => (await import('./plugin.js')).handlers;

/** The config's top level when it asks for agent mode. */
function agentMode(stdin: string): { agentSocket?: unknown; cniVersion?: unknown } | undefined {
  if (!stdin.includes('"agent"')) return undefined;
  try {
    const c = JSON.parse(stdin) as { mode?: unknown; agentSocket?: unknown; cniVersion?: unknown };
    return c !== null && typeof c === 'object' && c.mode === 'agent' ? c : undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const io = processIo();
  let stdin: string | undefined;
  try {
    stdin = process.env.CNI_COMMAND ? await io.readStdin() : '';
  } catch {
    stdin = undefined; // runPlugin reads again and reports the failure
  }
  // VERSION is answered here: it needs no agent.
  const agent = stdin === undefined || process.env.CNI_COMMAND === 'VERSION' ? undefined : agentMode(stdin);
  if (agent !== undefined) {
    const { forwardToAgent } = await import('./sys/agent-forward.js');
    const r = await forwardToAgent(process.env, stdin!, agent);
    io.writeStdout(r.stdout);
    io.exit(r.status);
  } else {
    void runPlugin(
      {
        ...pluginInfo(),
        add: async (a) => (await impl()).add(a),
        del: async (a) => (await impl()).del(a),
        check: async (a) => (await impl()).check(a),
        gc: async (a) => (await impl()).gc(a),
        status: async (a) => (await impl()).status(a),
      },
      stdin === undefined ? io : { ...io, readStdin: () => stdin! },
    );
  }
}

void main();
