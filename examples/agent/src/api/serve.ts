/**
 * The resident agent (`agent serve`): starts the agent (or restores the one with this name, CNI pods
 * included), serves its API on the unix socket until SIGINT/SIGTERM, then releases its handles and
 * leaves pods, maps and state for the next start. And the CLI's side of it: commands that change or list
 * pods go through the API when an agent serves, instead of opening its state files in a second process.
 */
import { existsSync } from 'node:fs';
import { Agent, type AgentOptions, type ClusterSpec, SCENARIO_CONCURRENCY } from '../agent.js';
import type { Scenario } from '../policy.js';
import { statePath } from '../state.js';
import { AgentClient } from './client.js';
import { ApiServer, type ApiServerOptions } from './server.js';

/** A running agent with its API. */
export interface Resident {
  agent: Agent;
  server: ApiServer;
  /** Stops serving and releases the agent's handles (pods, maps and state stay). */
  close(): Promise<void>;
}

/**
 * Starts (or restores) the agent named in `options` and serves its API.
 * @throws AgentError as {@link Agent.start} / {@link Agent.restore} / {@link ApiServer.listen}.
 */
export async function startResident(
  options: AgentOptions,
  scenario: Scenario | undefined,
  api: ApiServerOptions = {},
): Promise<Resident> {
  const stateDir = options.stateDir ?? `/run/datapath-agent/${options.name ?? 'demo'}`;
  let agent: Agent;
  if (existsSync(statePath(stateDir))) {
    agent = await Agent.restore(options);
  } else {
    const cluster: ClusterSpec = {
      namespaces: scenario?.namespaces ?? {},
      policies: scenario?.policies ?? [],
      enforcement: scenario?.enforcement ?? 'default',
    };
    agent = await Agent.start(options, cluster);
    try {
      if (scenario) await agent.addPodsAsync(scenario.pods, { concurrency: SCENARIO_CONCURRENCY });
    } catch (err) {
      agent.destroy();
      throw err;
    }
  }
  let server: ApiServer;
  try {
    server = await ApiServer.listen(agent, api);
  } catch (err) {
    agent.close();
    throw err;
  }
  return {
    agent,
    server,
    close: async () => {
      await server.close();
      agent.close();
    },
  };
}

/** A client of the agent's API when an agent serves on `socketPath` and answers, else undefined. */
export async function residentClient(socketPath: string): Promise<AgentClient | undefined> {
  if (!existsSync(socketPath)) return undefined;
  const client = new AgentClient({ socketPath, timeoutMs: 30_000 });
  try {
    await client.health();
    return client;
  } catch {
    client.close();
    return undefined;
  }
}
