// SPDX-License-Identifier: Apache-2.0
/*
 * Host programs.
 *
 * cil_from_host (cilium_host tc egress): packets the stack routes to the
 *   local pod CIDR via cilium_host are delivered to the endpoint by
 *   redirect; with tunnel routing, packets to a prefix whose ipcache entry
 *   has a tunnel endpoint are encapsulated (VNI = the host identity) and
 *   sent towards the remote node; others continue to cilium_net.
 * cil_to_host (cilium_host and cilium_net tc ingress): pass to the stack,
 *   traced.
 * cil_from_netdev (native devices, tc ingress): VXLAN for a local pod is
 *   decapsulated (identity from the VNI) and delivered; other packets for a
 *   local pod go straight into its namespace (TTL decremented); everything
 *   else passes to the stack, counted.
 */
#include "lib/common.h"
#include "lib/events.h"
#include "lib/eth.h"
#include "lib/tunnel.h"

/* Encapsulate host traffic to a tunneled prefix, else pass it on. */
static __always_inline int host_to_overlay(struct __sk_buff *skb, __u32 daddr)
{
	struct remote_endpoint_info *info = tunnel_lookup4(daddr);
	__u32 endpoint, dst_label;

	if (!info)
		return TC_ACT_OK;
	endpoint = info->tunnel_endpoint;
	dst_label = info->sec_identity;
	update_metrics(skb, 0, METRIC_EGRESS, 0, 0);
	send_trace(skb, TRACE_TO_OVERLAY, 0, IDENTITY_HOST, dst_label, 0,
		   TUNNEL_IFINDEX);
	if (encap_and_redirect(skb, endpoint, IDENTITY_HOST) < 0)
		return send_drop(skb, DROP_WRITE_ERROR, METRIC_EGRESS, 0,
				 IDENTITY_HOST, __LINE__, FILE_HOST);
	return TC_ACT_REDIRECT;
}

static __always_inline int from_host(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct endpoint_info *dst;
	__u32 src_identity, saddr;

	if ((void *)(ip4 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	dst = lookup_endpoint4(ip4->daddr);
	if (!dst)
		return host_to_overlay(skb, ip4->daddr);
	if (dst->flags & ENDPOINT_F_HOST)
		return TC_ACT_OK;
	saddr = ip4->saddr;
	src_identity = saddr == ROUTER_IP ? IDENTITY_HOST : lookup_identity4(saddr);

	__u32 ifindex = dst->ifindex;
	__u16 dst_id = dst->lxc_id;
	__u32 dst_label = dst->sec_id;

	if (redirect_to_endpoint(skb, dst, src_identity, false) < 0)
		return send_drop(skb, DROP_WRITE_ERROR, METRIC_INGRESS, 0,
				 src_identity, __LINE__, FILE_HOST);
	update_metrics(skb, 0, METRIC_INGRESS, 0, 0);
	send_trace(skb, TRACE_TO_LXC, 0, src_identity, dst_label, dst_id,
		   ifindex);
	return TC_ACT_REDIRECT;
}

SEC("classifier")
int cil_from_host(struct __sk_buff *skb)
{
	return from_host(skb);
}

SEC("classifier")
int cil_to_host(struct __sk_buff *skb)
{
	update_metrics(skb, 0, METRIC_INGRESS, 0, 0);
	send_trace(skb, TRACE_FROM_HOST, 0, IDENTITY_HOST, 0, 0, skb->ifindex);
	return TC_ACT_OK;
}

SEC("classifier")
int cil_from_netdev(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip4;
	struct endpoint_info *dst;
	__u32 src_identity, ifindex, dst_label;
	__u16 dst_id;
	__u8 ttl;
	int ret;

	/* VXLAN from another node to a local pod (tunnel routing). */
	ret = vxlan_decap_to_endpoint(skb);
	if (ret >= 0)
		return ret;
	update_metrics(skb, 0, METRIC_INGRESS, 0, 0);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	ip4 = data + ETH_HLEN;
	if ((void *)(ip4 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	/* A packet from another node for a local pod (native routing) goes
	 * straight into the pod's namespace, skipping the stack's routing,
	 * the cilium_host hop and the pod's veth (TTL decremented as the
	 * stack would); everything else (tunnel traffic for the host, the
	 * node's own, frames for other hosts, an expiring TTL the stack
	 * answers) continues to the stack. */
	dst = lookup_endpoint4(ip4->daddr);
	ttl = ip4->ttl;
	if (!dst || (dst->flags & ENDPOINT_F_HOST) ||
	    skb->pkt_type != PACKET_HOST || ttl <= 1)
		return TC_ACT_OK;
	src_identity = lookup_identity4(ip4->saddr);
	ifindex = dst->ifindex;
	dst_id = dst->lxc_id;
	dst_label = dst->sec_id;
	if (ipv4_dec_ttl(skb, ttl) < 0 ||
	    redirect_to_endpoint(skb, dst, src_identity, true) < 0)
		return send_drop(skb, DROP_WRITE_ERROR, METRIC_INGRESS, 0,
				 src_identity, __LINE__, FILE_HOST);
	send_trace(skb, TRACE_TO_LXC, 0, src_identity, dst_label, dst_id,
		   ifindex);
	return TC_ACT_REDIRECT;
}
