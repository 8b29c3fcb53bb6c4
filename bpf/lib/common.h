/* SPDX-License-Identifier: Apache-2.0 */
/* Includes, the shared maps and small helpers used by every program. */
#ifndef CILIUM_LIB_COMMON_H
#define CILIUM_LIB_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifndef PACKET_HOST
#define PACKET_HOST		0
#define PACKET_OTHERHOST	3
#endif

/* Per-node constants, patched at load time (EbpfLoader::override_global). */
volatile const __u32 ROUTER_IP = 0;	/* network byte order */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65535);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events SEC(".maps");

static __always_inline struct endpoint_info *lookup_endpoint4(__u32 ip4)
{
	struct endpoint_key key = {};

	key.ip4 = ip4;
	key.family = ENDPOINT_KEY_IPV4;
	return bpf_map_lookup_elem(&cilium_lxc, &key);
}

/* Longest-prefix ipcache entry covering an IPv4 address, NULL if none. */
static __always_inline struct remote_endpoint_info *lookup_ipcache4(__u32 ip4)
{
	struct ipcache_key key = {};

	key.prefixlen = 32 + 32;
	key.family = ENDPOINT_KEY_IPV4;
	key.ip4 = ip4;
	return bpf_map_lookup_elem(&cilium_ipcache_v2, &key);
}

/* Security identity of an IPv4 address from the ipcache (world if unknown). */
static __always_inline __u32 lookup_identity4(__u32 ip4)
{
	struct remote_endpoint_info *info = lookup_ipcache4(ip4);

	return info ? info->sec_identity : IDENTITY_WORLD;
}

/* The identity carried in skb->mark (upstream encoding). */
static __always_inline __u32 identity_to_mark(__u32 identity)
{
	return ((identity & 0xFFFF) << 16) | MARK_MAGIC_IDENTITY |
	       ((identity >> 16) & 0xFF);
}

#endif /* CILIUM_LIB_COMMON_H */
