//! IP address management, pure logic without I/O.
//!
//! - [`PodCidrAllocator`]: the operator's cluster-pool allocator, handing
//!   each node a block of `cluster-pool-ipv4-mask-size` from
//!   `cluster-pool-ipv4-cidr`.
//! - [`NodeIpAllocator`]: the agent's allocator inside one node's pod
//!   CIDR(s): network and broadcast reserved, owners recorded, never two
//!   owners for one IP, serializable for persistence across restarts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// IPAM errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Invalid configuration (e.g. a mask longer than /30, mask shorter than the pool).
    #[error("{0}")]
    InvalidConfig(String),
    /// Nothing left to allocate.
    #[error("{0}")]
    Exhausted(String),
    /// The address or block is taken by someone else.
    #[error("{0}")]
    Conflict(String),
    /// The address is outside the pool.
    #[error("{0}")]
    OutOfRange(String),
}

/// The operator's cluster-pool PodCIDR allocator.
#[derive(Debug, Clone)]
pub struct PodCidrAllocator {
    _todo: (),
}

impl PodCidrAllocator {
    /// A pool of `cidrs`, cut in blocks of `mask` bits. Masks longer than
    /// /30 or shorter than a pool's own prefix are rejected with a clear
    /// message.
    pub fn new(cidrs: &[Ipv4Net], mask: u8) -> Result<Self, Error> {
        let _ = (cidrs, mask);
        todo!()
    }

    /// Record an existing allocation (restart); conflicting or out-of-pool
    /// blocks are errors.
    pub fn restore(&mut self, node: &str, block: Ipv4Net) -> Result<(), Error> {
        let _ = (node, block);
        todo!()
    }

    /// The node's block: its existing one, or the lowest free one.
    pub fn allocate(&mut self, node: &str) -> Result<Ipv4Net, Error> {
        let _ = node;
        todo!()
    }

    /// Free the node's block (node deleted).
    pub fn release(&mut self, node: &str) -> Option<Ipv4Net> {
        let _ = node;
        todo!()
    }

    /// Current allocations.
    pub fn allocations(&self) -> BTreeMap<String, Ipv4Net> {
        todo!()
    }
}

/// The agent's per-node pod IP allocator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIpAllocator {
    _todo: (),
}

impl NodeIpAllocator {
    /// Allocator over the node's pod CIDRs; network and broadcast
    /// addresses of each are never handed out.
    pub fn new(cidrs: &[Ipv4Net]) -> Self {
        let _ = cidrs;
        todo!()
    }

    /// The lowest free address, recorded for `owner` (`router`, `health`,
    /// `default/webpod-xyz`, a container ID ...).
    pub fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, Error> {
        let _ = owner;
        todo!()
    }

    /// A specific address (restore); the same owner again is fine.
    pub fn allocate(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), Error> {
        let _ = (ip, owner);
        todo!()
    }

    /// Free an address; returns its owner.
    pub fn release(&mut self, ip: Ipv4Addr) -> Option<String> {
        let _ = ip;
        todo!()
    }

    /// Allocated addresses and their owners.
    pub fn allocated(&self) -> &BTreeMap<Ipv4Addr, String> {
        todo!()
    }

    /// Usable addresses in total (excluding network/broadcast).
    pub fn capacity(&self) -> u32 {
        todo!()
    }

    /// The pod CIDRs.
    pub fn cidrs(&self) -> &[Ipv4Net] {
        todo!()
    }
}
