// The JSON Schema of a datapath-cni config: the base NetConf keys plus the plugin's own, with
// descriptions. Generated from the zod schema so the two cannot drift.
import * as z from 'zod/mini';
import { DEFAULT_AGENT_SOCKET, pluginConfigSchema } from './config.js';

const DESCRIPTIONS: Record<string, string> = {
  mode: 'Endpoint style: "ptp" (container address keeps the IPAM prefix, gateway /32 on the host veth) or "cilium" (/32 container address, gw/32 scope link then default via gw), both in-process; or "agent": the invocation is forwarded to the datapath agent (examples/agent, `agent serve`), which allocates, wires the endpoint, gives it an identity and policy (then only agentSocket is read; no ipam section).',
  mtu: 'MTU of both veth ends.',
  hostNetns:
    'Path of the network namespace that holds the host side of the veth (default: the namespace the plugin runs in). Used by tests and sandboxes; DATAPATH_CNI_HOST_NETNS overrides it.',
  bpf: 'Optional: a BPF program (sched_cls) from a compiled ELF object, attached with @datapath/loader to the tcx hook of the host veth (ingress: traffic from the pod) and pinned as <pinDir>/<host veth>-<direction> so it outlives the plugin process; DEL removes the pin.',
  ipam: 'Address management: "host-local" runs in-process over @datapath/ipam (same on-disk layout as the reference host-local plugin); any other type is executed from CNI_PATH.',
};

/** The JSON Schema (draft 2020-12) of a datapath-cni network configuration. */
export function datapathCniJsonSchema(): Record<string, unknown> {
  const own = z.toJSONSchema(pluginConfigSchema(), { io: 'input', unrepresentable: 'any' }) as {
    properties: Record<string, Record<string, unknown>>;
  };
  own.properties.mode = { ...own.properties.mode, enum: ['ptp', 'cilium', 'agent'] };
  own.properties.agentSocket = {
    type: 'string',
    pattern: '^/',
    default: DEFAULT_AGENT_SOCKET,
    description:
      "Agent mode: the unix socket of the datapath agent's API (`/run/datapath-agent/<name>/api.sock`).",
  };
  own.properties.ipFamilies = {
    type: 'array',
    items: { enum: ['IPv4', 'IPv6'] },
    minItems: 1,
    maxItems: 2,
    uniqueItems: true,
    default: ['IPv4'],
    description:
      'Agent mode: the pod\'s address families, ["IPv4"] or ["IPv4", "IPv6"] (dual stack: also an address from the agent\'s IPv6 pod CIDR, --pod-cidr6). The agent\'s datapath forwards IPv4 only.',
  };
  for (const [k, d] of Object.entries(DESCRIPTIONS)) if (own.properties[k]) own.properties[k].description = d;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/datapath/datapath/packages/cni-plugin/datapath-cni.schema.json',
    title: 'datapath-cni network configuration',
    type: 'object',
    required: ['cniVersion', 'name', 'type'],
    // ipam is required except in agent mode (the agent allocates).
    if: { properties: { mode: { const: 'agent' } }, required: ['mode'] },
    else: { required: ['ipam'] },
    properties: {
      cniVersion: { type: 'string', enum: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] },
      name: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$' },
      type: { const: 'datapath-cni' },
      ...own.properties,
      dns: {
        type: 'object',
        properties: {
          nameservers: { type: 'array', items: { type: 'string' } },
          domain: { type: 'string' },
          search: { type: 'array', items: { type: 'string' } },
          options: { type: 'array', items: { type: 'string' } },
        },
      },
      capabilities: { type: 'object', additionalProperties: { type: 'boolean' } },
      runtimeConfig: { type: 'object' },
      prevResult: { type: 'object' },
    },
    additionalProperties: true,
  };
}
