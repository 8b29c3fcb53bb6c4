/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host routing in BPF: a packet from a local endpoint to another node (or
 * beyond) is routed by the programs instead of the kernel stack. The FIB
 * lookup is the one the stack would make for a packet arriving on the
 * endpoint's veth (input route, policy rules, forwarding enabled on the
 * veth, route MTU); the packet then goes straight out of the device the
 * FIB names through the neighbour subsystem (bpf_redirect_neigh), which
 * resolves and confirms the next hop as the stack's output path does.
 * Whatever the stack must see (local or unroutable destinations, packets
 * too big for the route, expiring TTL, IP options) is left to it, so the
 * kernel still answers with the same ICMP errors. So is everything on a
 * kernel without BPF_FIB_LOOKUP_SKIP_NEIGH (before 6.3), which rejects
 * the lookup.
 */
#ifndef CILIUM_LIB_FIB_H
#define CILIUM_LIB_FIB_H

#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "common.h"

#ifndef AF_INET
#define AF_INET		2
#endif

/*
 * The length of the IPv4 packets `ip4` (the header at ETH_HLEN, 20 bytes)
 * stands for on the wire: its own length, or for a GSO packet that of
 * each segment. 0 if unknown (a GSO type other than TCP or UDP, headers
 * out of reach).
 */
static __always_inline __u32 ipv4_wire_len(struct __sk_buff *skb,
					   const struct iphdr *ip4)
{
	void *data_end = (void *)(long)skb->data_end;
	const struct tcphdr *tcp = (const void *)(ip4 + 1);

	if (!skb->gso_size)
		return bpf_ntohs(ip4->tot_len);
	if (ip4->protocol == IPPROTO_UDP)
		return sizeof(*ip4) + sizeof(struct udphdr) + skb->gso_size;
	if (ip4->protocol != IPPROTO_TCP || (void *)(tcp + 1) > data_end)
		return 0;
	return sizeof(*ip4) + tcp->doff * 4 + skb->gso_size;
}

/*
 * Route the IPv4 packet `ip4` (header at ETH_HLEN, bounds checked by the
 * caller) that arrived on skb->ifindex: true, with the output device in
 * fib->ifindex and the next hop in fib->ipv4_dst, when the programs can
 * forward it themselves; false when it is the stack's (the packet is
 * untouched either way).
 */
static __always_inline bool fib_forward4(struct __sk_buff *skb,
					 const struct iphdr *ip4,
					 struct bpf_fib_lookup *fib)
{
	__u32 len;

	/* The stack forwards only frames addressed to this host, answers
	 * an expiring TTL with ICMP and handles IP options itself. */
	if (skb->pkt_type != PACKET_HOST || ip4->ttl <= 1 || ip4->ihl != 5)
		return false;
	len = ipv4_wire_len(skb, ip4);
	if (!len)
		return false;
	fib->family = AF_INET;
	fib->tos = ip4->tos;
	fib->l4_protocol = ip4->protocol;
	/* Checked against the route MTU: FRAG_NEEDED leaves the packet to
	 * the stack, which fragments it or sends "fragmentation needed". */
	fib->tot_len = len;
	fib->ipv4_src = ip4->saddr;
	fib->ipv4_dst = ip4->daddr;
	fib->ifindex = skb->ifindex;
	/* Not local, not a blackhole or unreachable route, forwarding
	 * enabled, an IPv4 next hop, and not back where it came from (the
	 * stack would also send an ICMP redirect). */
	return bpf_fib_lookup(skb, fib, sizeof(*fib),
			      BPF_FIB_LOOKUP_SKIP_NEIGH) == BPF_FIB_LKUP_RET_SUCCESS &&
	       fib->family == AF_INET && fib->ifindex != skb->ifindex;
}

/* Send the packet out of fib->ifindex to the next hop fib->ipv4_dst (after
 * a bpf_fib_lookup); the neighbour subsystem writes the Ethernet header.
 * Returns TC_ACT_REDIRECT. */
static __always_inline int redirect_nexthop4(const struct bpf_fib_lookup *fib)
{
	struct bpf_redir_neigh nh = {};

	nh.nh_family = AF_INET;
	nh.ipv4_nh = fib->ipv4_dst;
	return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
}

#endif /* CILIUM_LIB_FIB_H */
