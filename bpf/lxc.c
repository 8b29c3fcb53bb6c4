// SPDX-License-Identifier: Apache-2.0
/*
 * Endpoint programs, attached to the host side of each pod's veth.
 *
 * cil_from_container (tc ingress = packets leaving the pod):
 *   - ARP requests for any address but the pod's own are answered with the
 *     host-side veth MAC (the pod's gateway is the router IP);
 *   - IPv4 must come from the endpoint that owns the veth (else dropped,
 *     "Invalid source ip");
 *   - IPv4 to another local endpoint is delivered straight into its
 *     namespace (MACs rewritten, TTL decremented, source identity in
 *     skb->mark);
 *   - with tunnel routing, IPv4 to a prefix whose ipcache entry has a
 *     tunnel endpoint is encapsulated (VNI = the pod's identity, TTL
 *     decremented; lib/tunnel.h) and sent towards the remote node;
 *   - IPv4 the kernel would forward (to another node in native routing,
 *     or beyond) is routed here: FIB lookup, TTL decremented, out of the
 *     device the FIB names (lib/fib.h);
 *   - anything else goes to the kernel stack: the node's own addresses,
 *     and what the kernel must answer (ICMP errors, fragmentation).
 */
#include "lib/common.h"
#include "lib/events.h"
#include "lib/eth.h"
#include "lib/arp.h"
#include "lib/fib.h"
#include "lib/tunnel.h"

static __always_inline int handle_arp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct arp_packet *req = data;
	struct endpoint_info *ep;

	if ((void *)(req + 1) > data_end)
		return TC_ACT_OK;
	if (req->arp.ar_hrd != bpf_htons(ARPHRD_ETHER) ||
	    req->arp.ar_pro != bpf_htons(ETH_P_IP) ||
	    req->arp.ar_hln != ETH_ALEN || req->arp.ar_pln != 4 ||
	    req->arp.ar_op != bpf_htons(ARPOP_REQUEST))
		return TC_ACT_OK;
	/* Gratuitous ARP / duplicate address detection: not ours to answer. */
	if (req->body.tip == req->body.sip || req->body.sip == 0)
		return TC_ACT_OK;
	ep = lookup_endpoint4(req->body.sip);
	if (!ep || ep->ifindex != skb->ifindex)
		return TC_ACT_OK;
	if (arp_respond(skb, req, ep->node_mac) < 0)
		return send_drop(skb, DROP_WRITE_ERROR, METRIC_EGRESS, ep->lxc_id,
				 ep->sec_id, __LINE__, FILE_LXC);
	update_metrics(skb, 0, METRIC_EGRESS, 0, 0);
	return TC_ACT_REDIRECT;
}

static __always_inline int handle_ipv4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct endpoint_info *src, *dst;
	__u32 saddr, daddr, dst_label;
	__u16 src_id;
	__u8 ttl;

	if ((void *)(ip4 + 1) > data_end || ip4->ihl < 5)
		return send_drop(skb, DROP_INVALID, METRIC_EGRESS, 0, 0,
				 __LINE__, FILE_LXC);
	saddr = ip4->saddr;
	daddr = ip4->daddr;
	ttl = ip4->ttl;

	src = lookup_endpoint4(saddr);
	if (!src || src->ifindex != skb->ifindex)
		return send_drop(skb, DROP_INVALID_SIP, METRIC_EGRESS,
				 src ? src->lxc_id : 0, IDENTITY_WORLD,
				 __LINE__, FILE_LXC);
	src_id = src->lxc_id;
	__u32 src_identity = src->sec_id;

	dst = lookup_endpoint4(daddr);
	if (dst && !(dst->flags & ENDPOINT_F_HOST) && ttl > 1) {
		__u32 ifindex = dst->ifindex;
		__u16 dst_id = dst->lxc_id;

		dst_label = dst->sec_id;
		if (ipv4_dec_ttl(skb, ttl) < 0 ||
		    redirect_to_endpoint(skb, dst, src_identity, true) < 0)
			return send_drop(skb, DROP_WRITE_ERROR, METRIC_EGRESS,
					 src_id, src_identity, __LINE__,
					 FILE_LXC);
		update_metrics(skb, 0, METRIC_EGRESS, 0, 0);
		send_trace(skb, TRACE_TO_LXC, src_id, src_identity, dst_label,
			   dst_id, ifindex);
		return TC_ACT_REDIRECT;
	}

	/* Tunnel routing: encapsulate towards the remote node. */
	if (!dst && daddr != ROUTER_IP && ttl > 1) {
		struct remote_endpoint_info *info = tunnel_lookup4(daddr);

		if (info) {
			__u32 endpoint = info->tunnel_endpoint;

			dst_label = info->sec_identity;
			if (ipv4_dec_ttl(skb, ttl) < 0)
				return send_drop(skb, DROP_WRITE_ERROR,
						 METRIC_EGRESS, src_id,
						 src_identity, __LINE__,
						 FILE_LXC);
			/* Traced and counted before the outer headers hide
			 * the pod's packet. */
			update_metrics(skb, 0, METRIC_EGRESS, 0, 0);
			send_trace(skb, TRACE_TO_OVERLAY, src_id, src_identity,
				   dst_label, 0, TUNNEL_IFINDEX);
			if (encap_and_redirect(skb, endpoint, src_identity) < 0)
				return send_drop(skb, DROP_WRITE_ERROR,
						 METRIC_EGRESS, src_id,
						 src_identity, __LINE__,
						 FILE_LXC);
			return TC_ACT_REDIRECT;
		}
	}

	/* Host routing: out of the device the FIB names, skipping the
	 * stack, when the stack would only forward it there. */
	if (daddr != ROUTER_IP) {
		struct bpf_fib_lookup fib = {};

		if (fib_forward4(skb, ip4, &fib)) {
			if (ipv4_dec_ttl(skb, ttl) < 0)
				return send_drop(skb, DROP_WRITE_ERROR,
						 METRIC_EGRESS, src_id,
						 src_identity, __LINE__,
						 FILE_LXC);
			update_metrics(skb, 0, METRIC_EGRESS, 0, 0);
			send_trace_to4(skb, TRACE_TO_NETWORK, src_id,
				       src_identity, daddr, fib.ifindex);
			return redirect_nexthop4(&fib);
		}
	}

	/* To the stack: the node itself, and what the kernel must answer
	 * or route (ICMP errors, fragmentation, local addresses). */
	update_metrics(skb, 0, METRIC_EGRESS, 0, 0);
	if (daddr == ROUTER_IP)
		send_trace(skb, TRACE_TO_HOST, src_id, src_identity,
			   IDENTITY_HOST, 0, skb->ifindex);
	else
		send_trace_to4(skb, TRACE_TO_STACK, src_id, src_identity, daddr,
			       skb->ifindex);
	return TC_ACT_OK;
}

static __always_inline int from_container(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return send_drop(skb, DROP_INVALID, METRIC_EGRESS, 0, 0,
				 __LINE__, FILE_LXC);
	switch (eth->h_proto) {
	case bpf_htons(ETH_P_ARP):
		return handle_arp(skb);
	case bpf_htons(ETH_P_IP):
		return handle_ipv4(skb);
	default:
		/* IPv6 and anything else: not supported by this datapath. */
		return send_drop(skb, DROP_UNKNOWN_L3, METRIC_EGRESS, 0, 0,
				 __LINE__, FILE_LXC);
	}
}

SEC("classifier")
int cil_from_container(struct __sk_buff *skb)
{
	return from_container(skb);
}
