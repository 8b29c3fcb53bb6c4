/* SPDX-License-Identifier: Apache-2.0 */
/* Metrics counting and trace/drop notifications into cilium_events. */
#ifndef CILIUM_LIB_EVENTS_H
#define CILIUM_LIB_EVENTS_H

#include <stdbool.h>
#include <linux/in.h>

#include "common.h"

static __always_inline void update_metrics(struct __sk_buff *skb, __u8 reason,
					   __u8 dir, __u16 line, __u8 file)
{
	struct metrics_key key = {};
	struct metrics_value *val;

	key.reason = reason;
	key.dir = dir;
	key.line = line;
	key.file = file;
	val = bpf_map_lookup_elem(&cilium_metrics, &key);
	if (val) {
		/* per-CPU: no atomics needed */
		val->count += 1;
		val->bytes += skb->len;
	} else {
		struct metrics_value init = { .count = 1, .bytes = skb->len };

		bpf_map_update_elem(&cilium_metrics, &key, &init, BPF_NOEXIST);
	}
}

/* Copy up to NOTIFY_CAPTURE_LEN bytes of the packet; returns the length. */
static __always_inline __u16 capture(struct __sk_buff *skb, __u8 *buf)
{
	__u32 cap = skb->len;

	if (cap > NOTIFY_CAPTURE_LEN)
		cap = NOTIFY_CAPTURE_LEN;
	if (cap == 0 || bpf_skb_load_bytes(skb, 0, buf, cap) < 0)
		return 0;
	return cap;
}

/* Trace aggregation, as upstream's monitor-aggregation "medium" (the
 * default): bulk TCP data packets are not reported, only segments that
 * open or close a connection (SYN, FIN, RST) and every non-TCP packet.
 * 0 reports every packet. A load-time constant. */
volatile const __u32 MONITOR_AGGREGATION = 1;

#define TCP_FLAGS_REPORTED 0x07 /* FIN | SYN | RST */

static __always_inline bool trace_wanted(struct __sk_buff *skb)
{
	__u8 vihl, proto, flags;

	if (!MONITOR_AGGREGATION)
		return true;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return true;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 9, &proto, 1) < 0)
		return true;
	if (proto != IPPROTO_TCP)
		return true;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + (vihl & 0x0f) * 4 + 13, &flags, 1) < 0)
		return true;
	return flags & TCP_FLAGS_REPORTED;
}

/* The header and capture fields every notification starts with. */
static __always_inline void fill_headers(struct __sk_buff *skb,
					 struct notify_common_hdr *hdr,
					 struct notify_capture_hdr *cap,
					 __u8 type, __u8 subtype, __u16 source,
					 __u16 version)
{
	hdr->type = type;
	hdr->subtype = subtype;
	hdr->source = source;
	hdr->hash = bpf_get_hash_recalc(skb);
	cap->len_orig = skb->len;
	cap->version = version;
}

/* A trace notification, whether or not trace_wanted. */
static __always_inline void emit_trace(struct __sk_buff *skb, __u8 obs_point,
				       __u16 source, __u32 src_label,
				       __u32 dst_label, __u16 dst_id,
				       __u32 ifindex)
{
	struct trace_event *ev;

	ev = bpf_ringbuf_reserve(&cilium_events, sizeof(*ev), 0);
	if (!ev)
		return;
	__builtin_memset(&ev->msg, 0, sizeof(ev->msg));
	fill_headers(skb, &ev->msg.hdr, &ev->msg.cap, CILIUM_NOTIFY_TRACE,
		     obs_point, source, TRACE_NOTIFY_VERSION);
	ev->msg.src_label = src_label;
	ev->msg.dst_label = dst_label;
	ev->msg.dst_id = dst_id;
	ev->msg.reason = TRACE_REASON_UNKNOWN;
	ev->msg.ifindex = ifindex;
	ev->msg.cap.len_cap = capture(skb, ev->data);
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void send_trace(struct __sk_buff *skb, __u8 obs_point,
				       __u16 source, __u32 src_label,
				       __u32 dst_label, __u16 dst_id,
				       __u32 ifindex)
{
	if (trace_wanted(skb))
		emit_trace(skb, obs_point, source, src_label, dst_label, dst_id,
			   ifindex);
}

/* send_trace for a packet to `daddr`, not a local endpoint: its identity
 * comes from the ipcache, looked up only for a packet that is reported
 * (aggregation skips most of a bulk transfer). */
static __always_inline void send_trace_to4(struct __sk_buff *skb,
					   __u8 obs_point, __u16 source,
					   __u32 src_label, __u32 daddr,
					   __u32 ifindex)
{
	if (trace_wanted(skb))
		emit_trace(skb, obs_point, source, src_label,
			   lookup_identity4(daddr), 0, ifindex);
}

/* Count a drop, notify it, and return TC_ACT_SHOT. */
static __always_inline int send_drop(struct __sk_buff *skb, __u8 reason,
				     __u8 dir, __u16 source, __u32 src_label,
				     __u16 line, __u8 file)
{
	struct drop_event *ev;

	update_metrics(skb, reason, dir, line, file);
	ev = bpf_ringbuf_reserve(&cilium_events, sizeof(*ev), 0);
	if (ev) {
		__builtin_memset(&ev->msg, 0, sizeof(ev->msg));
		fill_headers(skb, &ev->msg.hdr, &ev->msg.cap, CILIUM_NOTIFY_DROP,
			     reason, source, DROP_NOTIFY_VERSION);
		ev->msg.src_label = src_label;
		ev->msg.line = line;
		ev->msg.file = file;
		ev->msg.ifindex = skb->ifindex;
		ev->msg.cap.len_cap = capture(skb, ev->data);
		bpf_ringbuf_submit(ev, 0);
	}
	return TC_ACT_SHOT;
}

#endif /* CILIUM_LIB_EVENTS_H */
