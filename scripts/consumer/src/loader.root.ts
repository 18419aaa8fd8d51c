// @datapath/loader from its published tarball (root): compile a tc program, load it, attach it with tcx to
// a veth inside a namespace this program makes, read it back with query(), detach.
import { randomBytes } from 'node:crypto';
import { compile, load, openObject, query, tcxAttach } from '@datapath/loader';
import { Handle, netnsAdd, netnsDelete } from '@datapath/netlink';

const source = `
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#define SEC(name) __attribute__((section(name), used))
SEC("tc") int consumer_pass(struct __sk_buff *skb) { return TC_ACT_OK; }
char _license[] SEC("license") = "GPL";
`;
const name = `dpc${randomBytes(3).toString('hex')}l`;
const ns = netnsAdd(name);
try {
  const h = Handle.open(ns);
  h.linkNew({ name: 'v0', info: { kind: 'veth', peer: { name: 'v1' } } });
  h.close();
  const { path } = await compile({ source });
  const coll = load(openObject(path));
  const link = tcxAttach(coll.program('consumer_pass'), {
    ifname: 'v0',
    direction: 'ingress',
    netns: ns,
  });
  const attached = query({ ifname: 'v0', netns: ns });
  if (!attached.tcx.ingress.programs.some((p) => p.name === 'consumer_pass')) throw new Error('not attached');
  link.detach();
  coll.close();
  console.log(`attached: ${JSON.stringify(attached.tcx.ingress.programs.map((p) => p.name))}`);
} finally {
  ns.close();
  netnsDelete(name);
}
