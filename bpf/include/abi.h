/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI shared between the BPF programs and the Rust agent: every map key and
 * value and every event layout. This header is the single source of truth;
 * crates/datapath mirrors each struct with #[repr(C)] and checks sizes and
 * offsets against this file (build.rs compiles bpf/tests/layout.c).
 *
 * All padding is explicit so that both sides agree byte for byte.
 */
#ifndef CILIUM_ABI_H
#define CILIUM_ABI_H

#include <linux/types.h>

/* Address families as stored in map keys (upstream values). */
#define ENDPOINT_KEY_IPV4 1
#define ENDPOINT_KEY_IPV6 2

/* cilium_lxc: local endpoints by IP. Hash, key 20 bytes, value 40 bytes. */
struct endpoint_key {
	union {
		struct {
			__u32 ip4;	/* network byte order */
			__u32 pad1;
			__u32 pad2;
			__u32 pad3;
		};
		__u8 ip6[16];
	};
	__u8 family;		/* ENDPOINT_KEY_IPV4 */
	__u8 key;		/* 0 */
	__u16 cluster_id;	/* 0 for local endpoints */
};

#define ENDPOINT_F_HOST		1	/* the host endpoint */
#define ENDPOINT_F_ATHOSTNS	2	/* lives in the host namespace */

struct endpoint_info {
	__u32 ifindex;		/* host-side veth */
	__u16 unused;
	__u16 lxc_id;		/* endpoint ID */
	__u32 flags;		/* ENDPOINT_F_* */
	__u32 pad0;
	__u64 mac;		/* pod MAC in the first 6 bytes (memory order) */
	__u64 node_mac;		/* host-side veth MAC, same encoding */
	__u32 sec_id;		/* security identity */
	__u32 parent_ifindex;
};

/* cilium_ipcache_v2: LPM trie; prefixlen = 32 + IP prefix length. With
 * IPCACHE_F_HAS_TUNNEL_EP set (and tunnel routing enabled), traffic to the
 * prefix is encapsulated towards tunnel_endpoint. */
struct ipcache_key {
	__u32 prefixlen;
	__u16 cluster_id;
	__u8 pad1;
	__u8 family;		/* ENDPOINT_KEY_IPV4 */
	union {
		struct {
			__u32 ip4;	/* network byte order */
			__u32 pad4;
			__u32 pad5;
			__u32 pad6;
		};
		__u8 ip6[16];
	};
};

#define IPCACHE_F_SKIP_TUNNEL	1
#define IPCACHE_F_HAS_TUNNEL_EP	2
#define IPCACHE_F_IPV6_TUNNEL_EP 4

struct remote_endpoint_info {
	__u32 sec_identity;
	union {
		struct {
			__u32 tunnel_endpoint;	/* network byte order, 0 = none */
			__u32 pad7;
			__u32 pad8;
			__u32 pad9;
		};
		__u8 tunnel_endpoint6[16];
	};
	__u16 pad10;
	__u8 key;		/* encryption key index */
	__u8 flags;		/* IPCACHE_F_* */
};

/* cilium_metrics: per-CPU hash. */
#define METRIC_INGRESS	1
#define METRIC_EGRESS	2
#define METRIC_SERVICE	3

struct metrics_key {
	__u8 reason;		/* 0 forwarded, else -(drop code) */
	__u8 dir;		/* METRIC_* */
	__u16 line;
	__u8 file;
	__u8 reserved[3];
};

struct metrics_value {
	__u64 count;
	__u64 bytes;
};

/* Drop reasons (positive form of upstream's negative codes). */
#define DROP_INVALID_SIP	132
#define DROP_INVALID		134
#define DROP_UNKNOWN_L3		139
#define DROP_WRITE_ERROR	141
#define DROP_NO_TUNNEL_KEY	155

/* Source files named in metrics and drop notifications. */
#define FILE_LXC	1
#define FILE_HOST	2
#define FILE_OVERLAY	3

/* Well-known identities. */
#define IDENTITY_HOST	1
#define IDENTITY_WORLD	2

/* skb->mark magic carrying a security identity (upstream encoding). */
#define MARK_MAGIC_IDENTITY	0x0F00
#define MARK_MAGIC_HOST		0x0C00

/* cilium_events message types and trace observation points. */
#define CILIUM_NOTIFY_DROP	1
#define CILIUM_NOTIFY_TRACE	4

#define TRACE_TO_LXC		0
#define TRACE_TO_HOST		2
#define TRACE_TO_STACK		3
#define TRACE_TO_OVERLAY	4
#define TRACE_FROM_LXC		5
#define TRACE_FROM_HOST		7
#define TRACE_FROM_OVERLAY	9
#define TRACE_FROM_NETWORK	10
#define TRACE_TO_NETWORK	11

/* Trace reasons. */
#define TRACE_REASON_UNKNOWN	0

/* Bytes of packet captured after each notification. */
#define NOTIFY_CAPTURE_LEN	128

/* Common header of every notification (8 bytes). */
struct notify_common_hdr {
	__u8 type;
	__u8 subtype;		/* trace: observation point; drop: reason */
	__u16 source;		/* endpoint ID emitting it, 0 = host */
	__u32 hash;		/* skb hash */
};

/* Packet capture header following the common header (8 bytes). */
struct notify_capture_hdr {
	__u32 len_orig;		/* original packet length */
	__u16 len_cap;		/* bytes captured after the notification */
	__u16 version;
};

#define TRACE_NOTIFY_VERSION	0
#define DROP_NOTIFY_VERSION	1

/* TRACE (type 4): 48 bytes, then len_cap packet bytes. */
struct trace_notify {
	struct notify_common_hdr hdr;
	struct notify_capture_hdr cap;
	__u32 src_label;
	__u32 dst_label;
	__u16 dst_id;		/* destination endpoint ID, 0 if none */
	__u8 reason;
	__u8 flags;		/* bit 0: IPv6 */
	__u32 ifindex;
	union {
		struct {
			__u32 orig_ip4;
			__u32 orig_pad1;
			__u32 orig_pad2;
			__u32 orig_pad3;
		};
		__u8 orig_ip6[16];
	};
};

/* DROP (type 1): 40 bytes, then len_cap packet bytes. */
struct drop_notify {
	struct notify_common_hdr hdr;
	struct notify_capture_hdr cap;
	__u32 src_label;
	__u32 dst_label;
	__u32 dst_id;
	__u16 line;
	__u8 file;
	__s8 ext_error;
	__u32 ifindex;
	__u8 flags;
	__u8 pad[3];
};

/* What the ring buffer carries: one notification and its capture. */
struct trace_event {
	struct trace_notify msg;
	__u8 data[NOTIFY_CAPTURE_LEN];
};

struct drop_event {
	struct drop_notify msg;
	__u8 data[NOTIFY_CAPTURE_LEN];
};

#endif /* CILIUM_ABI_H */
