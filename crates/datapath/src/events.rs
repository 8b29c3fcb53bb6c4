//! Decoding of `cilium_events` notifications (upstream layouts: TRACE and
//! DROP with the captured packet bytes) and the async reader of the ring
//! buffer.

use std::net::Ipv4Addr;

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::abi::{self, DropNotifyRaw, TraceNotifyRaw, c};
use crate::{Error, Result};

/// A trace notification (`CILIUM_NOTIFY_TRACE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceNotification {
    /// Observation point (`TRACE_TO_LXC` 0, `TRACE_TO_HOST` 2,
    /// `TRACE_TO_STACK` 3, `TRACE_TO_OVERLAY` 4, `TRACE_FROM_HOST` 7,
    /// `TRACE_FROM_OVERLAY` 9, `TRACE_TO_NETWORK` 11, ...).
    pub obs_point: u8,
    /// Endpoint ID that emitted it (0 = host).
    pub source: u16,
    /// Packet hash.
    pub hash: u32,
    /// Original packet length.
    pub len_orig: u32,
    /// Source identity.
    pub src_label: u32,
    /// Destination identity.
    pub dst_label: u32,
    /// Destination endpoint ID (0 if none).
    pub dst_id: u16,
    /// Trace reason.
    pub reason: u8,
    /// Interface index.
    pub ifindex: u32,
    /// Original IPv4 address (before NAT), unspecified if none.
    pub orig_ip: Ipv4Addr,
    /// Captured packet bytes (from the Ethernet header).
    pub data: Vec<u8>,
}

/// A drop notification (`CILIUM_NOTIFY_DROP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropNotification {
    /// Drop reason (positive form of the upstream code, e.g. 132).
    pub reason: u8,
    /// Endpoint ID that emitted it.
    pub source: u16,
    /// Packet hash.
    pub hash: u32,
    /// Original packet length.
    pub len_orig: u32,
    /// Source identity.
    pub src_label: u32,
    /// Destination identity.
    pub dst_label: u32,
    /// Destination endpoint ID.
    pub dst_id: u32,
    /// Source line of the drop.
    pub line: u16,
    /// Source file of the drop (1 lxc, 2 host).
    pub file: u8,
    /// Interface index.
    pub ifindex: u32,
    /// Captured packet bytes.
    pub data: Vec<u8>,
}

/// A decoded datapath notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Packet trace.
    Trace(TraceNotification),
    /// Packet drop.
    Drop(DropNotification),
}

impl Notification {
    /// Decode one ring buffer record (`None` for unknown or short records).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match *bytes.first()? {
            c::CILIUM_NOTIFY_TRACE => {
                let t: TraceNotifyRaw = abi::read(bytes)?;
                let data = capture(bytes, c::SIZEOF_trace_notify, t.hdr.len_cap);
                let ip: [u8; 4] = t.orig_ip[..4].try_into().ok()?;
                Some(Self::Trace(TraceNotification {
                    obs_point: t.hdr.subtype,
                    source: t.hdr.source,
                    hash: t.hdr.hash,
                    len_orig: t.hdr.len_orig,
                    src_label: t.src_label,
                    dst_label: t.dst_label,
                    dst_id: t.dst_id,
                    reason: t.reason,
                    ifindex: t.ifindex,
                    orig_ip: Ipv4Addr::from(ip),
                    data,
                }))
            }
            c::CILIUM_NOTIFY_DROP => {
                let d: DropNotifyRaw = abi::read(bytes)?;
                let data = capture(bytes, c::SIZEOF_drop_notify, d.hdr.len_cap);
                Some(Self::Drop(DropNotification {
                    reason: d.hdr.subtype,
                    source: d.hdr.source,
                    hash: d.hdr.hash,
                    len_orig: d.hdr.len_orig,
                    src_label: d.src_label,
                    dst_label: d.dst_label,
                    dst_id: d.dst_id,
                    line: d.line,
                    file: d.file,
                    ifindex: d.ifindex,
                    data,
                }))
            }
            _ => None,
        }
    }
}

fn capture(bytes: &[u8], offset: usize, len_cap: u16) -> Vec<u8> {
    let end = (offset + usize::from(len_cap).min(c::NOTIFY_CAPTURE_LEN)).min(bytes.len());
    bytes.get(offset..end).unwrap_or_default().to_vec()
}

/// Upstream's text for a drop reason (as `cilium-dbg monitor` prints it).
pub fn drop_reason_name(reason: u8) -> &'static str {
    match reason {
        0 => "Success",
        c::DROP_INVALID_SIP => "Invalid source ip",
        c::DROP_INVALID => "Invalid packet",
        c::DROP_UNKNOWN_L3 => "Unsupported L3 protocol",
        c::DROP_WRITE_ERROR => "Error writing to packet",
        c::DROP_NO_TUNNEL_KEY => "Error retrieving tunnel key",
        _ => "Unknown",
    }
}

/// The reader of `cilium_events` (from [`crate::Datapath::events`]).
pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl Events {
    pub(crate) fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the RingBuf owns the map's fd (MapData holds an OwnedFd)
        // for as long as the AsyncFd owns the RingBuf, and as_raw_fd always
        // returns that same fd.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| Error::Other(format!("cilium_events: {e}")))?;
        Ok(Self { ring })
    }

    /// The next notification (waits; skips records it cannot decode).
    /// Must be called inside a tokio runtime.
    pub async fn next(&mut self) -> Result<Notification> {
        loop {
            let mut guard = self
                .ring
                .readable_mut()
                .await
                .map_err(|e| Error::Other(format!("cilium_events: {e}")))?;
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if let Some(n) = Notification::decode(&item) {
                    return Ok(n);
                }
            }
            guard.clear_ready();
        }
    }
}
