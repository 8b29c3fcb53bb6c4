// SPDX-License-Identifier: Apache-2.0
/*
 * Host program run by crates/datapath/build.rs: prints the sizes and field
 * offsets of every ABI struct, and the ABI constants, as Rust constants.
 * The Rust mirrors assert against them at compile time.
 */
#include <stddef.h>
#include <stdio.h>

#include "abi.h"

#define SIZE(s) \
	printf("pub const SIZEOF_%s: usize = %zu;\n", #s, sizeof(struct s))
#define OFF(s, f)                                                  \
	printf("pub const OFFSETOF_%s_%s: usize = %zu;\n", #s, #f, \
	       offsetof(struct s, f))
#define CONST(ty, c) printf("pub const %s: %s = %lu;\n", #c, #ty, (unsigned long)(c))

int main(void)
{
	SIZE(endpoint_key);
	OFF(endpoint_key, ip4);
	OFF(endpoint_key, family);
	OFF(endpoint_key, key);
	OFF(endpoint_key, cluster_id);

	SIZE(endpoint_info);
	OFF(endpoint_info, ifindex);
	OFF(endpoint_info, lxc_id);
	OFF(endpoint_info, flags);
	OFF(endpoint_info, mac);
	OFF(endpoint_info, node_mac);
	OFF(endpoint_info, sec_id);
	OFF(endpoint_info, parent_ifindex);

	SIZE(ipcache_key);
	OFF(ipcache_key, prefixlen);
	OFF(ipcache_key, cluster_id);
	OFF(ipcache_key, family);
	OFF(ipcache_key, ip4);

	SIZE(remote_endpoint_info);
	OFF(remote_endpoint_info, sec_identity);
	OFF(remote_endpoint_info, tunnel_endpoint);
	OFF(remote_endpoint_info, key);
	OFF(remote_endpoint_info, flags);

	SIZE(metrics_key);
	OFF(metrics_key, reason);
	OFF(metrics_key, dir);
	OFF(metrics_key, line);
	OFF(metrics_key, file);
	SIZE(metrics_value);
	OFF(metrics_value, count);
	OFF(metrics_value, bytes);

	SIZE(notify_common_hdr);
	SIZE(notify_capture_hdr);
	SIZE(trace_notify);
	OFF(trace_notify, cap);
	OFF(trace_notify, src_label);
	OFF(trace_notify, dst_label);
	OFF(trace_notify, dst_id);
	OFF(trace_notify, reason);
	OFF(trace_notify, flags);
	OFF(trace_notify, ifindex);
	OFF(trace_notify, orig_ip4);
	SIZE(drop_notify);
	OFF(drop_notify, src_label);
	OFF(drop_notify, dst_label);
	OFF(drop_notify, dst_id);
	OFF(drop_notify, line);
	OFF(drop_notify, file);
	OFF(drop_notify, ext_error);
	OFF(drop_notify, ifindex);
	OFF(drop_notify, flags);

	CONST(u8, ENDPOINT_KEY_IPV4);
	CONST(u32, ENDPOINT_F_HOST);
	CONST(u8, IPCACHE_F_HAS_TUNNEL_EP);
	CONST(u8, CILIUM_NOTIFY_DROP);
	CONST(u8, CILIUM_NOTIFY_TRACE);
	CONST(usize, NOTIFY_CAPTURE_LEN);
	CONST(u8, DROP_INVALID_SIP);
	CONST(u8, DROP_INVALID);
	CONST(u8, DROP_UNKNOWN_L3);
	CONST(u8, DROP_WRITE_ERROR);
	CONST(u8, DROP_NO_TUNNEL_KEY);
	CONST(u8, TRACE_TO_STACK);
	CONST(u8, TRACE_TO_OVERLAY);
	CONST(u8, TRACE_FROM_OVERLAY);
	CONST(u8, TRACE_TO_NETWORK);
	CONST(u32, MARK_MAGIC_IDENTITY);
	return 0;
}
