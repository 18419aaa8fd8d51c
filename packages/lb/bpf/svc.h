/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet service load balancing for @datapath/lb's tc programs, IPv4 and IPv6: destination NAT
 * of a flow to one backend of a service (the service maps of lb.h, filled by the package's writer)
 * and reverse NAT of the backend's replies, through a `svc`/`rsvc` pair in the family's flow map
 * (nat4 of nat.h, nat6 of nat6.h).
 *
 *   svc4_forward / svc6_forward  a packet towards a frontend: its flow's `svc` half, or for a TCP SYN
 *                / a UDP packet of no known flow a backend chosen now (session affinity first, then
 *                the service's Maglev table by the flow hash of lb.h, the same on every node with
 *                the same lb_hash_seed, or a random slot, slots weighted); the destination
 *                becomes the backend.
 *   svc4_reply / svc6_reply      a packet from a backend to a client of such a flow (`rsvc` half):
 *                the source becomes the frontend again.
 *
 * A flow to a service without a backend for new flows is refused where the caller asks for it: its
 * first packet comes back as an ICMP port unreachable (refuse.h), so the client fails at once.
 * The pair keeps the backend's address and port, so a flow stays on its backend after the backend
 * turns terminating or is removed from the service (graceful termination); only new flows avoid it.
 * The steps are written once (svc_family.h) and instantiated for each family below.
 */
#ifndef DATAPATH_LB_SVC_H
#define DATAPATH_LB_SVC_H

#include "nat.h"
#include "nat6.h"
#include "lb.h"
#include "refuse.h"

/*
 * Anchors the Maglev table's full type in the object's BTF (a pointer to the struct alone leaves a
 * forward declaration, and libbpf cannot size lb_maglev's inner map from it).
 */
struct lb_maglev_table (*lb_maglev_table_anchor)[1] __attribute__((unused));

/*
 * The seed of the Maglev flow hash (lb_flow_hash4/6 of lb.h): one value for the whole cluster, so that
 * every node sends a flow to the same backend (set at load: NetdevConfig.hashSeed, PodLbOptions.hashSeed).
 */
const volatile __u32 lb_hash_seed = 0;

#include "family4.h"
#include "svc_family.h"
#include "family_undef.h"

#include "family6.h"
#include "svc_family.h"
#include "family_undef.h"

#endif
