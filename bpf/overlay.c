// SPDX-License-Identifier: Apache-2.0
/*
 * Overlay program, attached to the tunnel device (cilium_vxlan or
 * cilium_geneve, external mode).
 *
 * cil_from_overlay (tc ingress = decapsulated packets): the source
 *   security identity is the tunnel ID (VNI), no ipcache lookup. IPv4 to a
 *   local endpoint is delivered by redirect (MACs rewritten, TTL
 *   decremented, identity in skb->mark); anything else goes to the stack,
 *   marked as addressed to this host (the inner destination MAC belongs to
 *   the sending node).
 */
#include "lib/common.h"
#include "lib/events.h"
#include "lib/eth.h"
#include "lib/tunnel.h"

/* Deliver a decapsulated packet whose source identity is `src_identity`. */
static __always_inline int overlay_deliver(struct __sk_buff *skb,
					   __u32 src_identity)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct endpoint_info *dst;
	__u8 ttl;

	if ((void *)(ip4 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto to_stack;
	ttl = ip4->ttl;
	dst = overlay_endpoint(ip4->daddr, ttl);
	if (dst)
		return overlay_to_endpoint(skb, dst, ttl, src_identity);

to_stack:
	if (skb->pkt_type == PACKET_OTHERHOST)
		bpf_skb_change_type(skb, PACKET_HOST);
	update_metrics(skb, 0, METRIC_INGRESS, 0, 0);
	send_trace(skb, TRACE_FROM_OVERLAY, 0, src_identity, 0, 0,
		   skb->ifindex);
	return TC_ACT_OK;
}

static __always_inline int from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return send_drop(skb, DROP_NO_TUNNEL_KEY, METRIC_INGRESS, 0, 0,
				 __LINE__, FILE_OVERLAY);
	return overlay_deliver(skb, (__u32)key.tunnel_id);
}

SEC("classifier")
int cil_from_overlay(struct __sk_buff *skb)
{
	return from_overlay(skb);
}
