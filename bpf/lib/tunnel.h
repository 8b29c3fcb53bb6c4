/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tunnel routing: encapsulation towards the tunnel endpoint of an ipcache
 * entry through the tunnel device (VXLAN or GENEVE in external mode). The
 * tunnel ID (VNI) carries the source security identity.
 */
#ifndef CILIUM_LIB_TUNNEL_H
#define CILIUM_LIB_TUNNEL_H

#include "common.h"

/* Patched at load time: non-zero with tunnel routing, and the ifindex of
 * cilium_vxlan / cilium_geneve. */
volatile const __u32 TUNNEL_ENABLED = 0;
volatile const __u32 TUNNEL_IFINDEX = 0;

#define TUNNEL_TTL	64

/*
 * The ipcache entry of `daddr` if a packet to it is to be encapsulated
 * (tunnel routing on, an IPv4 tunnel endpoint set), else NULL.
 */
static __always_inline struct remote_endpoint_info *tunnel_lookup4(__u32 daddr)
{
	struct remote_endpoint_info *info;

	if (!TUNNEL_ENABLED)
		return NULL;
	info = lookup_ipcache4(daddr);
	if (!info || !(info->flags & IPCACHE_F_HAS_TUNNEL_EP) ||
	    (info->flags & (IPCACHE_F_SKIP_TUNNEL | IPCACHE_F_IPV6_TUNNEL_EP)) ||
	    !info->tunnel_endpoint)
		return NULL;
	return info;
}

/*
 * Attach the tunnel key (VNI = src_identity, remote = endpoint, TTL 64) and
 * redirect to the tunnel device; the device encapsulates the whole frame.
 * Returns TC_ACT_REDIRECT, or a negative value if the key cannot be set.
 */
static __always_inline int encap_and_redirect(struct __sk_buff *skb,
					      __u32 endpoint,
					      __u32 src_identity)
{
	struct bpf_tunnel_key key = {};

	key.tunnel_id = src_identity;
	key.remote_ipv4 = bpf_ntohl(endpoint);	/* the helper wants host order */
	key.tunnel_ttl = TUNNEL_TTL;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key),
				   BPF_F_ZERO_CSUM_TX) < 0)
		return -1;
	return bpf_redirect(TUNNEL_IFINDEX, 0);
}

#endif /* CILIUM_LIB_TUNNEL_H */
