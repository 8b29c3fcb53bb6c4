// SPDX-License-Identifier: Apache-2.0
/*
 * Test-only entry points around the real programs (crates/datapath packet
 * tests). BPF_PROG_TEST_RUN cannot show or supply tunnel metadata, so:
 *
 * test_from_container_key runs cil_from_container's body, then copies the
 *   tunnel key it attached into skb->cb[] (visible in ctx_out): cb[0] VNI,
 *   cb[1] remote IPv4 (host order), cb[2] TTL; cb[3] = 1 if a key exists.
 * test_from_host_key: the same around cil_from_host.
 * test_from_overlay_key attaches a tunnel key as the tunnel device's
 *   receive path would (VNI from cb[0], remote from cb[1]) and runs
 *   cil_from_overlay's body.
 */
#include "../lxc.c"
#include "../host.c"
#include "../overlay.c"

static __always_inline int export_key(struct __sk_buff *skb, int verdict)
{
	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0) {
		skb->cb[0] = key.tunnel_id;
		/* A transmit key reads back with the addresses swapped: the
		 * remote (destination) comes out as local_ipv4. */
		skb->cb[1] = key.local_ipv4;
		skb->cb[2] = key.tunnel_ttl;
		skb->cb[3] = 1;
	}
	return verdict;
}

SEC("classifier")
int test_from_container_key(struct __sk_buff *skb)
{
	return export_key(skb, from_container(skb));
}

SEC("classifier")
int test_from_host_key(struct __sk_buff *skb)
{
	return export_key(skb, from_host(skb));
}

SEC("classifier")
int test_from_overlay_key(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};

	key.tunnel_id = skb->cb[0];
	key.remote_ipv4 = skb->cb[1];
	skb->cb[0] = 0;
	skb->cb[1] = 0;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return -1;
	return from_overlay(skb);
}
