/* SPDX-License-Identifier: Apache-2.0 */
/* Ethernet and IPv4 rewrites for local delivery. */
#ifndef CILIUM_LIB_ETH_H
#define CILIUM_LIB_ETH_H

#include <stdbool.h>
#include <stddef.h>
#include "common.h"

/* Set destination and source MACs (6 bytes each, stored in a __u64). */
static __always_inline int eth_rewrite(struct __sk_buff *skb, __u64 dst,
				       __u64 src)
{
	__u8 macs[12];

	__builtin_memcpy(macs, &dst, 6);
	__builtin_memcpy(macs + 6, &src, 6);
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/* Decrement the TTL of the IPv4 header at ETH_HLEN, fixing the checksum. */
static __always_inline int ipv4_dec_ttl(struct __sk_buff *skb, __u8 ttl)
{
	__u8 new_ttl = ttl - 1;
	__u32 off = ETH_HLEN + offsetof(struct iphdr, ttl);

	/* TTL is the high byte of the 16-bit word it shares with protocol. */
	if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check),
				bpf_htons((__u16)ttl << 8),
				bpf_htons((__u16)new_ttl << 8), 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new_ttl, 1, 0);
}

/*
 * Deliver to a local endpoint: MACs for the pod, the source identity in the
 * mark. From a tc ingress hook the packet goes straight into the pod's
 * namespace, received by its end of the veth (bpf_redirect_peer: no
 * transmit through the host-side veth and no second pass through the
 * backlog queue); the frame is then not parsed again, so it is marked as
 * addressed to the pod. From an egress hook (cilium_host) it is sent
 * through the host-side veth.
 */
static __always_inline int redirect_to_endpoint(struct __sk_buff *skb,
						const struct endpoint_info *ep,
						__u32 src_identity,
						bool at_ingress)
{
	if (eth_rewrite(skb, ep->mac, ep->node_mac) < 0)
		return -1;
	skb->mark = identity_to_mark(src_identity);
	if (!at_ingress)
		return bpf_redirect(ep->ifindex, 0);
	if (skb->pkt_type != PACKET_HOST &&
	    bpf_skb_change_type(skb, PACKET_HOST) < 0)
		return -1;
	return bpf_redirect_peer(ep->ifindex, 0);
}

#endif /* CILIUM_LIB_ETH_H */
