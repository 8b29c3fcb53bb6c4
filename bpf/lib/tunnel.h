/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tunnel routing: encapsulation towards the tunnel endpoint of an ipcache
 * entry. The tunnel ID (VNI) carries the source security identity.
 *
 * VXLAN is encapsulated here: the outer Ethernet/IPv4/UDP/VXLAN headers
 * are pushed with bpf_skb_adjust_room (the kernel keeps GSO working as for
 * its own UDP tunnels) and the frame goes straight to the underlay device
 * the FIB names, so neither the tunnel device's transmit path nor a
 * per-packet route lookup for a metadata dst is paid. Decapsulation of
 * VXLAN addressed to this node happens on the native devices' ingress
 * (vxlan_decap_to_endpoint, called by cil_from_netdev) for packets to
 * local endpoints. Everything else (GENEVE, an endpoint the FIB cannot
 * reach, packets too big for the underlay, host-bound traffic) takes the
 * tunnel device (external mode) with a tunnel key, as before: the kernel
 * then sends ICMP "fragmentation needed" and handles the rest.
 */
#ifndef CILIUM_LIB_TUNNEL_H
#define CILIUM_LIB_TUNNEL_H

#include <linux/udp.h>

#include "common.h"
#include "eth.h"
#include "events.h"
#include "fib.h"

/* Patched at load time: non-zero with tunnel routing, and the ifindex of
 * cilium_vxlan / cilium_geneve. */
volatile const __u32 TUNNEL_ENABLED = 0;
volatile const __u32 TUNNEL_IFINDEX = 0;
/* Non-zero when the programs encapsulate and decapsulate VXLAN themselves
 * (VXLAN tunnel routing), with this node's IP (network byte order: the
 * outer source, and the outer destination decapsulated) and the UDP port
 * (host byte order). */
volatile const __u32 TUNNEL_BPF_VXLAN = 0;
volatile const __u32 TUNNEL_LOCAL_IP = 0;
volatile const __u32 TUNNEL_PORT = 0;

#define TUNNEL_TTL	64

/* Newer kernels clear the UDP-tunnel GSO state on decapsulation when
 * asked; older ones reject the flag (-EINVAL) and the call is repeated
 * without it. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L4_UDP
#define BPF_F_ADJ_ROOM_DECAP_L4_UDP	(1ULL << 10)
#endif

#define VXLAN_FLAG_VNI	0x08000000	/* the I flag: a valid VNI */
#define IP_DF_OFFSET	0x3fff		/* MF and fragment offset bits */
/* Source ports for the outer UDP header, as the kernel's tunnels pick
 * them (its default local port range). */
#define TUNNEL_SPORT_MIN	32768
#define TUNNEL_SPORT_MAX	61000

struct vxlanhdr_bpf {
	__be32 flags;
	__be32 vni;		/* VNI in the upper 24 bits */
};

/* What VXLAN adds behind the outer Ethernet header. */
struct vxlan_encap {
	struct iphdr ip;
	struct udphdr udp;
	struct vxlanhdr_bpf vxlan;
	struct ethhdr inner;
} __attribute__((packed));

#define VXLAN_ENCAP_LEN	((int)sizeof(struct vxlan_encap))	/* 50 */

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

/* Through the tunnel device: attach the key (VNI = src_identity, remote =
 * endpoint, TTL 64) and redirect; the device encapsulates the frame. */
static __always_inline int encap_via_device(struct __sk_buff *skb,
					    __u32 endpoint, __u32 src_identity)
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

/* Fold a 32-bit one's complement sum into the IPv4 header checksum. */
static __always_inline __u16 csum_fold32(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/*
 * Push the VXLAN headers in front of the IPv4 packet at ETH_HLEN (outer
 * source TUNNEL_LOCAL_IP, destination `endpoint`, VNI `src_identity`; the
 * inner Ethernet header keeps the frame's MACs) and set the outer MACs.
 */
static __always_inline int vxlan_push(struct __sk_buff *skb, __u32 endpoint,
				      __u32 src_identity, const __u8 *dmac,
				      const __u8 *smac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct vxlan_encap h = {};
	struct iphdr ip = {};
	__u32 hash = bpf_get_hash_recalc(skb);
	/* The outer IPv4 payload: UDP, VXLAN and the whole inner frame. */
	__u32 len = skb->len + VXLAN_ENCAP_LEN - ETH_HLEN - sizeof(struct iphdr);
	__u8 macs[2 * ETH_ALEN];

	if ((void *)(ip4 + 1) > data_end)
		return -1;
	__builtin_memcpy(h.inner.h_dest, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(h.inner.h_source, eth->h_source, ETH_ALEN);
	h.inner.h_proto = bpf_htons(ETH_P_IP);
	ip.version = 4;
	ip.ihl = 5;
	ip.tos = ip4->tos & 0x3;	/* ECN travels outside (RFC 6040) */
	ip.tot_len = bpf_htons(len + sizeof(ip));
	ip.id = (__u16)bpf_get_prandom_u32();
	ip.ttl = TUNNEL_TTL;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = TUNNEL_LOCAL_IP;
	ip.daddr = endpoint;
	ip.check = csum_fold32(bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0));
	__builtin_memcpy(&h.ip, &ip, sizeof(ip));
	h.udp.source = bpf_htons(TUNNEL_SPORT_MIN +
				 (((__u64)hash * (TUNNEL_SPORT_MAX -
						  TUNNEL_SPORT_MIN)) >> 32));
	h.udp.dest = bpf_htons(TUNNEL_PORT);
	h.udp.len = bpf_htons(len);
	h.udp.check = 0;	/* zero UDP checksum, as the device sends */
	h.vxlan.flags = bpf_htonl(VXLAN_FLAG_VNI);
	h.vxlan.vni = bpf_htonl(src_identity << 8);

	if (bpf_skb_adjust_room(skb, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO |
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
				BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
				BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
				BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0) < 0)
		return -1;
	__builtin_memcpy(macs, dmac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, smac, ETH_ALEN);
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/*
 * Encapsulate towards `endpoint` with VNI = src_identity and redirect.
 * Returns TC_ACT_REDIRECT, or a negative value on failure (the packet
 * must then be dropped).
 */
static __always_inline int encap_and_redirect(struct __sk_buff *skb,
					      __u32 endpoint,
					      __u32 src_identity)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct bpf_fib_lookup fib = {};
	int ret;

	if (!TUNNEL_BPF_VXLAN || (void *)(ip4 + 1) > data_end)
		return encap_via_device(skb, endpoint, src_identity);
	fib.family = AF_INET;
	fib.ipv4_src = TUNNEL_LOCAL_IP;
	fib.ipv4_dst = endpoint;
	fib.ifindex = skb->ifindex;
	/* The underlay MTU check: the encapsulated size of a single packet;
	 * segments of a GSO packet are sized by the route MTU already. */
	if (!skb->gso_size)
		fib.tot_len = bpf_ntohs(ip4->tot_len) + VXLAN_ENCAP_LEN;
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return encap_via_device(skb, endpoint, src_identity);
	if (vxlan_push(skb, endpoint, src_identity, fib.dmac, fib.smac) < 0)
		return -1;
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH)
		return redirect_nexthop4(&fib);
	return bpf_redirect(fib.ifindex, 0);
}

/*
 * The local endpoint a decapsulated IPv4 packet to `daddr` with TTL `ttl`
 * is delivered to, or NULL: the host's own, none, or the TTL exhausted
 * (the stack takes those).
 */
static __always_inline struct endpoint_info *overlay_endpoint(__u32 daddr,
							       __u8 ttl)
{
	struct endpoint_info *dst = lookup_endpoint4(daddr);

	if (!dst || (dst->flags & ENDPOINT_F_HOST) || ttl <= 1)
		return NULL;
	return dst;
}

/*
 * Deliver a decapsulated IPv4 packet (at ETH_HLEN, TTL `ttl`) to `dst`
 * (from overlay_endpoint) with the source identity from the VNI: TTL
 * decremented, MACs rewritten, identity in the mark; counted and traced.
 */
static __always_inline int overlay_to_endpoint(struct __sk_buff *skb,
					       const struct endpoint_info *dst,
					       __u8 ttl, __u32 src_identity)
{
	__u32 ifindex = dst->ifindex;
	__u16 dst_id = dst->lxc_id;
	__u32 dst_label = dst->sec_id;

	if (ipv4_dec_ttl(skb, ttl) < 0 ||
	    redirect_to_endpoint(skb, dst, src_identity, true) < 0)
		return send_drop(skb, DROP_WRITE_ERROR, METRIC_INGRESS, 0,
				 src_identity, __LINE__, FILE_OVERLAY);
	update_metrics(skb, 0, METRIC_INGRESS, 0, 0);
	send_trace(skb, TRACE_FROM_OVERLAY, 0, src_identity, dst_label, dst_id,
		   ifindex);
	return TC_ACT_REDIRECT;
}

/*
 * A VXLAN packet (outer headers at ETH_HLEN) for a local endpoint:
 * decapsulate it and deliver it with the source identity from the VNI.
 * Returns TC_ACT_REDIRECT, TC_ACT_SHOT if the packet was changed but
 * cannot be delivered, or -1 when it is not such a packet (untouched; the
 * stack and the tunnel device take it).
 */
static __always_inline int vxlan_decap_to_endpoint(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct vxlan_encap *h = data + ETH_HLEN;
	struct iphdr *inner = (void *)(h + 1);
	struct endpoint_info *dst;
	__u32 src_identity;
	__u8 ttl;

	if (!TUNNEL_BPF_VXLAN || (void *)(inner + 1) > data_end ||
	    skb->pkt_type == PACKET_OTHERHOST)
		return -1;
	if (h->ip.ihl != 5 || h->ip.protocol != IPPROTO_UDP ||
	    h->ip.daddr != TUNNEL_LOCAL_IP ||
	    (h->ip.frag_off & bpf_htons(IP_DF_OFFSET)) ||
	    h->udp.dest != bpf_htons(TUNNEL_PORT) ||
	    !(h->vxlan.flags & bpf_htonl(VXLAN_FLAG_VNI)) ||
	    h->inner.h_proto != bpf_htons(ETH_P_IP) || inner->ihl < 5)
		return -1;
	ttl = inner->ttl;
	dst = overlay_endpoint(inner->daddr, ttl);
	if (!dst)
		return -1;
	src_identity = bpf_ntohl(h->vxlan.vni) >> 8;
	if (bpf_skb_adjust_room(skb, -VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO |
				BPF_F_ADJ_ROOM_DECAP_L4_UDP) < 0 &&
	    bpf_skb_adjust_room(skb, -VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
		return -1;
	return overlay_to_endpoint(skb, dst, ttl, src_identity);
}

#endif /* CILIUM_LIB_TUNNEL_H */
