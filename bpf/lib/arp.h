/* SPDX-License-Identifier: Apache-2.0 */
/* ARP responder: answer a pod's ARP request with its host-side veth MAC. */
#ifndef CILIUM_LIB_ARP_H
#define CILIUM_LIB_ARP_H

#include "common.h"

/* From linux/if_arp.h, which drags in libc headers. */
#define ARPHRD_ETHER	1
#define ARPOP_REQUEST	1
#define ARPOP_REPLY	2

struct arphdr {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
};

/* Ethernet/IPv4 ARP payload following struct arphdr. */
struct arp_eth_ipv4 {
	__u8 sha[ETH_ALEN];
	__u32 sip;
	__u8 tha[ETH_ALEN];
	__u32 tip;
} __attribute__((packed));

struct arp_packet {
	struct ethhdr eth;
	struct arphdr arp;
	struct arp_eth_ipv4 body;
} __attribute__((packed));

/*
 * Turn the request in place into a reply from `mac` for the target IP and
 * bounce it back out of the interface it came in on (to the pod).
 */
static __always_inline int arp_respond(struct __sk_buff *skb,
				       const struct arp_packet *req, __u64 mac)
{
	struct arp_packet rep;

	__builtin_memcpy(rep.eth.h_dest, req->body.sha, ETH_ALEN);
	__builtin_memcpy(rep.eth.h_source, &mac, ETH_ALEN);
	rep.eth.h_proto = bpf_htons(ETH_P_ARP);
	rep.arp = req->arp;
	rep.arp.ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(rep.body.sha, &mac, ETH_ALEN);
	rep.body.sip = req->body.tip;
	__builtin_memcpy(rep.body.tha, req->body.sha, ETH_ALEN);
	rep.body.tip = req->body.sip;
	if (bpf_skb_store_bytes(skb, 0, &rep, sizeof(rep), 0) < 0)
		return -1;
	return bpf_redirect(skb->ifindex, 0);
}

#endif /* CILIUM_LIB_ARP_H */
