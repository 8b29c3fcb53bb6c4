//! IP address management, pure logic without I/O.
//!
//! - [`PodCidrAllocator`]: the operator's cluster-pool allocator, handing
//!   each node a block of `cluster-pool-ipv4-mask-size` from
//!   `cluster-pool-ipv4-cidr`.
//! - [`NodeIpAllocator`]: the agent's allocator inside one node's pod
//!   CIDR(s): network and broadcast reserved, owners recorded, never two
//!   owners for one IP, serializable for persistence across restarts.
//!
//! Both allocators hand out the lowest free block/address, so results are
//! deterministic for a given history. Nothing here reads or writes the
//! store; callers persist and restore state.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The longest block a cluster pool may be cut into: a /30 has two usable
/// addresses once network and broadcast are reserved.
pub const MAX_BLOCK_PREFIX: u8 = 30;

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

/// First and last address of a network, as integers (inclusive).
fn bounds(net: &Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The operator's cluster-pool PodCIDR allocator.
#[derive(Debug, Clone)]
pub struct PodCidrAllocator {
    /// Pool CIDRs in configuration order (allocation fills the first one first).
    pools: Vec<Ipv4Net>,
    /// Block prefix length.
    mask: u8,
    /// node -> block.
    by_node: BTreeMap<String, Ipv4Net>,
    /// first address -> (last address, node): the occupied ranges, disjoint.
    used: BTreeMap<u32, (u32, String)>,
}

impl PodCidrAllocator {
    /// A pool of `cidrs`, cut in blocks of `mask` bits. Masks longer than
    /// /30 or shorter than a pool's own prefix are rejected with a clear
    /// message.
    pub fn new(cidrs: &[Ipv4Net], mask: u8) -> Result<Self, Error> {
        if mask > MAX_BLOCK_PREFIX {
            return Err(Error::InvalidConfig(format!(
                "cluster-pool-ipv4-mask-size /{mask} is too long: the minimum block is /{MAX_BLOCK_PREFIX}"
            )));
        }
        if cidrs.is_empty() {
            return Err(Error::InvalidConfig(
                "cluster-pool-ipv4-cidr is empty: at least one pool CIDR is required".into(),
            ));
        }
        let mut pools: Vec<Ipv4Net> = Vec::with_capacity(cidrs.len());
        for cidr in cidrs {
            let pool = cidr.trunc();
            if mask < pool.prefix_len() {
                return Err(Error::InvalidConfig(format!(
                    "cluster-pool-ipv4-mask-size /{mask} is shorter than the pool {pool}: blocks must be /{} or longer",
                    pool.prefix_len()
                )));
            }
            if let Some(other) = pools.iter().find(|p| overlaps(p, &pool)) {
                return Err(Error::InvalidConfig(format!(
                    "cluster-pool-ipv4-cidr {pool} overlaps {other}"
                )));
            }
            pools.push(pool);
        }
        Ok(Self {
            pools,
            mask,
            by_node: BTreeMap::new(),
            used: BTreeMap::new(),
        })
    }

    /// The pool CIDRs (normalized).
    pub fn pools(&self) -> &[Ipv4Net] {
        &self.pools
    }

    /// The block prefix length.
    pub fn mask(&self) -> u8 {
        self.mask
    }

    /// The occupied range overlapping `first..=last`, if any.
    fn occupant(&self, first: u32, last: u32) -> Option<(u32, u32, &str)> {
        // Ranges are disjoint: only the last one starting at or before
        // `last` can overlap.
        let (&start, (end, node)) = self.used.range(..=last).next_back()?;
        (*end >= first).then_some((start, *end, node.as_str()))
    }

    /// Record an existing allocation (restart); conflicting or out-of-pool
    /// blocks are errors.
    pub fn restore(&mut self, node: &str, block: Ipv4Net) -> Result<(), Error> {
        let block = block.trunc();
        if let Some(existing) = self.by_node.get(node) {
            if *existing == block {
                return Ok(());
            }
            return Err(Error::Conflict(format!(
                "node {node} already has pod CIDR {existing}, cannot also restore {block}"
            )));
        }
        if !self.pools.iter().any(|p| p.contains(&block)) {
            return Err(Error::OutOfRange(format!(
                "pod CIDR {block} of node {node} is not inside cluster-pool-ipv4-cidr {}",
                self.pools_text()
            )));
        }
        let (first, last) = bounds(&block);
        if let Some((start, end, other)) = self.occupant(first, last) {
            return Err(Error::Conflict(format!(
                "pod CIDR {block} of node {node} overlaps {}-{} allocated to node {other}",
                Ipv4Addr::from(start),
                Ipv4Addr::from(end)
            )));
        }
        self.used.insert(first, (last, node.to_string()));
        self.by_node.insert(node.to_string(), block);
        Ok(())
    }

    /// The lowest free block of the configured size.
    fn lowest_free(&self) -> Option<Ipv4Net> {
        let size = 1u64 << (32 - self.mask);
        for pool in &self.pools {
            let (pool_first, pool_last) = bounds(pool);
            let mut candidate = u64::from(pool_first);
            while candidate + size - 1 <= u64::from(pool_last) {
                // In range: candidate + size - 1 <= pool_last <= u32::MAX.
                let first = u32::try_from(candidate).ok()?;
                let last = u32::try_from(candidate + size - 1).ok()?;
                match self.occupant(first, last) {
                    None => return Ipv4Net::new(Ipv4Addr::from(first), self.mask).ok(),
                    // Next aligned block after the occupied range.
                    Some((_, end, _)) => candidate = (u64::from(end) + 1).div_ceil(size) * size,
                }
            }
        }
        None
    }

    fn pools_text(&self) -> String {
        let pools: Vec<String> = self.pools.iter().map(ToString::to_string).collect();
        pools.join(",")
    }

    /// The node's block: its existing one, or the lowest free one.
    pub fn allocate(&mut self, node: &str) -> Result<Ipv4Net, Error> {
        if let Some(block) = self.by_node.get(node) {
            return Ok(*block);
        }
        let block = self.lowest_free().ok_or_else(|| {
            Error::Exhausted(format!(
                "unable to allocate a /{} pod CIDR for node {node}: cluster-pool-ipv4-cidr {} is exhausted",
                self.mask,
                self.pools_text()
            ))
        })?;
        let (first, last) = bounds(&block);
        self.used.insert(first, (last, node.to_string()));
        self.by_node.insert(node.to_string(), block);
        Ok(block)
    }

    /// Free the node's block (node deleted).
    pub fn release(&mut self, node: &str) -> Option<Ipv4Net> {
        let block = self.by_node.remove(node)?;
        self.used.remove(&u32::from(block.network()));
        Some(block)
    }

    /// Current allocations.
    pub fn allocations(&self) -> BTreeMap<String, Ipv4Net> {
        self.by_node.clone()
    }
}

/// The agent's per-node pod IP allocator.
///
/// Deserialization checks the invariants (no overlapping CIDRs, every
/// allocated address usable), so a corrupt state file is an error rather
/// than a silently broken allocator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NodeIpState")]
pub struct NodeIpAllocator {
    /// The node's pod CIDRs, normalized, without overlaps.
    cidrs: Vec<Ipv4Net>,
    /// Allocated address -> owner.
    allocated: BTreeMap<Ipv4Addr, String>,
}

/// The serialized form of [`NodeIpAllocator`], checked on the way in.
#[derive(Deserialize)]
struct NodeIpState {
    cidrs: Vec<Ipv4Net>,
    allocated: BTreeMap<Ipv4Addr, String>,
}

impl TryFrom<NodeIpState> for NodeIpAllocator {
    type Error = Error;

    fn try_from(state: NodeIpState) -> Result<Self, Error> {
        let mut allocator = Self::new(&state.cidrs);
        if allocator.cidrs.len() != state.cidrs.len() {
            return Err(Error::InvalidConfig(format!(
                "overlapping pod CIDRs in saved IPAM state: {}",
                allocator.cidrs_text()
            )));
        }
        for (ip, owner) in &state.allocated {
            allocator.allocate(*ip, owner)?;
        }
        Ok(allocator)
    }
}

/// First and last usable (non network, non broadcast) address of `net`;
/// `None` for /31 and /32.
fn usable(net: &Ipv4Net) -> Option<(u32, u32)> {
    let (first, last) = bounds(net);
    (net.prefix_len() <= MAX_BLOCK_PREFIX).then_some((first + 1, last - 1))
}

impl NodeIpAllocator {
    /// Allocator over the node's pod CIDRs; network and broadcast
    /// addresses of each are never handed out.
    pub fn new(cidrs: &[Ipv4Net]) -> Self {
        let mut kept: Vec<Ipv4Net> = Vec::with_capacity(cidrs.len());
        for cidr in cidrs.iter().map(Ipv4Net::trunc) {
            if !kept.iter().any(|k| overlaps(k, &cidr)) {
                kept.push(cidr);
            }
        }
        Self {
            cidrs: kept,
            allocated: BTreeMap::new(),
        }
    }

    /// The lowest free address, recorded for `owner` (`router`, `health`,
    /// `default/webpod-xyz`, a container ID ...).
    pub fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, Error> {
        for (first, last) in self.cidrs.iter().filter_map(usable) {
            let mut candidate = first;
            for ip in self
                .allocated
                .range(Ipv4Addr::from(first)..=Ipv4Addr::from(last))
                .map(|(ip, _)| u32::from(*ip))
            {
                if ip != candidate {
                    break;
                }
                candidate += 1;
            }
            if candidate <= last {
                let ip = Ipv4Addr::from(candidate);
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
        }
        Err(Error::Exhausted(format!(
            "no free address left in {} ({} of {} allocated)",
            self.cidrs_text(),
            self.allocated.len(),
            self.capacity()
        )))
    }

    fn cidrs_text(&self) -> String {
        let cidrs: Vec<String> = self.cidrs.iter().map(ToString::to_string).collect();
        cidrs.join(",")
    }

    /// Whether `ip` may be handed out (inside a CIDR, not network/broadcast).
    pub fn is_usable(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.cidrs
            .iter()
            .filter_map(usable)
            .any(|(first, last)| (first..=last).contains(&ip))
    }

    /// A specific address (restore); the same owner again is fine.
    pub fn allocate(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), Error> {
        if !self.is_usable(ip) {
            return Err(Error::OutOfRange(format!(
                "{ip} is not a usable address of {}",
                self.cidrs_text()
            )));
        }
        match self.allocated.get(&ip) {
            Some(current) if current == owner => Ok(()),
            Some(current) => Err(Error::Conflict(format!(
                "{ip} is already allocated to {current}"
            ))),
            None => {
                self.allocated.insert(ip, owner.to_string());
                Ok(())
            }
        }
    }

    /// Free an address; returns its owner.
    pub fn release(&mut self, ip: Ipv4Addr) -> Option<String> {
        self.allocated.remove(&ip)
    }

    /// Free every address of `owner` (e.g. CNI DEL by container ID);
    /// returns them.
    pub fn release_owner(&mut self, owner: &str) -> Vec<Ipv4Addr> {
        let ips: Vec<Ipv4Addr> = self
            .allocated
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &ips {
            self.allocated.remove(ip);
        }
        ips
    }

    /// The owner of an allocated address.
    pub fn owner(&self, ip: Ipv4Addr) -> Option<&str> {
        self.allocated.get(&ip).map(String::as_str)
    }

    /// Allocated addresses and their owners.
    pub fn allocated(&self) -> &BTreeMap<Ipv4Addr, String> {
        &self.allocated
    }

    /// Usable addresses in total (excluding network/broadcast).
    pub fn capacity(&self) -> u32 {
        self.cidrs
            .iter()
            .filter_map(usable)
            .map(|(first, last)| last - first + 1)
            .sum()
    }

    /// The pod CIDRs.
    pub fn cidrs(&self) -> &[Ipv4Net] {
        &self.cidrs
    }
}

#[cfg(test)]
mod tests;
