//! Unit and randomized (seeded, reproducible) tests of both allocators.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn mask_longer_than_30_is_rejected_with_upstream_like_message() {
    let err = PodCidrAllocator::new(&[net("10.0.0.0/8")], 31).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidConfig(
            "cluster-pool-ipv4-mask-size /31 is too long: the minimum block is /30".into()
        )
    );
    assert!(PodCidrAllocator::new(&[net("10.0.0.0/8")], 30).is_ok());
}

#[test]
fn mask_shorter_than_pool_empty_and_overlapping_pools_are_rejected() {
    let err = PodCidrAllocator::new(&[net("172.20.0.0/16")], 8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster-pool-ipv4-mask-size /8 is shorter than the pool 172.20.0.0/16: blocks must be /16 or longer"
    );
    assert!(matches!(
        PodCidrAllocator::new(&[], 24),
        Err(Error::InvalidConfig(_))
    ));
    let err = PodCidrAllocator::new(&[net("10.0.0.0/8"), net("10.1.0.0/16")], 24).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster-pool-ipv4-cidr 10.1.0.0/16 overlaps 10.0.0.0/8"
    );
}

#[test]
fn blocks_are_handed_out_lowest_first_and_are_stable_per_node() {
    let mut a = PodCidrAllocator::new(&[net("172.20.0.0/16")], 24).unwrap();
    assert_eq!(a.allocate("k8s-ctr").unwrap(), net("172.20.0.0/24"));
    assert_eq!(a.allocate("k8s-w1").unwrap(), net("172.20.1.0/24"));
    assert_eq!(a.allocate("k8s-w0").unwrap(), net("172.20.2.0/24"));
    assert_eq!(a.allocate("k8s-w1").unwrap(), net("172.20.1.0/24"));
    assert_eq!(a.release("k8s-w1"), Some(net("172.20.1.0/24")));
    assert_eq!(a.release("k8s-w1"), None);
    assert_eq!(a.allocate("k8s-w2").unwrap(), net("172.20.1.0/24"));
    assert_eq!(a.allocate("k8s-w1").unwrap(), net("172.20.3.0/24"));
    assert_eq!(a.allocations().len(), 4);
}

#[test]
fn second_pool_is_used_after_the_first_and_exhaustion_names_the_node() {
    let mut a = PodCidrAllocator::new(&[net("10.0.0.0/29"), net("192.168.0.0/30")], 30).unwrap();
    assert_eq!(a.allocate("a").unwrap(), net("10.0.0.0/30"));
    assert_eq!(a.allocate("b").unwrap(), net("10.0.0.4/30"));
    assert_eq!(a.allocate("c").unwrap(), net("192.168.0.0/30"));
    let err = a.allocate("d").unwrap_err();
    assert_eq!(
        err,
        Error::Exhausted(
            "unable to allocate a /30 pod CIDR for node d: cluster-pool-ipv4-cidr 10.0.0.0/29,192.168.0.0/30 is exhausted"
                .into()
        )
    );
    assert!(!a.allocations().contains_key("d"));
}

#[test]
fn restore_keeps_existing_blocks_and_rejects_conflicts() {
    let mut a = PodCidrAllocator::new(&[net("172.20.0.0/16")], 24).unwrap();
    a.restore("w1", net("172.20.1.0/24")).unwrap();
    a.restore("w1", net("172.20.1.0/24")).unwrap();
    assert!(matches!(
        a.restore("w1", net("172.20.5.0/24")),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        a.restore("other", net("172.20.1.0/25"))
            .unwrap_err()
            .to_string(),
        "pod CIDR 172.20.1.0/25 of node other overlaps 172.20.1.0-172.20.1.255 allocated to node w1"
    );
    assert!(matches!(
        a.restore("x", net("10.0.0.0/24")),
        Err(Error::OutOfRange(_))
    ));
    // A restored block of a foreign size is honoured and skipped over.
    a.restore("big", net("172.20.2.0/23")).unwrap();
    assert_eq!(a.allocate("n0").unwrap(), net("172.20.0.0/24"));
    assert_eq!(a.allocate("n4").unwrap(), net("172.20.4.0/24"));
    assert_eq!(a.allocate("w1").unwrap(), net("172.20.1.0/24"));
}

#[test]
fn randomized_pod_cidr_operations_never_overlap_and_match_a_model() {
    let mut rng = StdRng::seed_from_u64(7);
    let pool = net("10.8.0.0/22");
    let mut a = PodCidrAllocator::new(&[pool], 26).unwrap();
    // Model: set of block indexes in use, lowest first.
    let mut model: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..5_000 {
        let node = format!("n{}", rng.random_range(0..24));
        if rng.random_bool(0.6) {
            let expected = model.get(&node).copied().or_else(|| {
                let used: BTreeSet<u32> = model.values().copied().collect();
                (0..16).find(|i| !used.contains(i))
            });
            match (a.allocate(&node), expected) {
                (Ok(block), Some(i)) => {
                    assert_eq!(
                        u32::from(block.network()),
                        u32::from(pool.network()) + i * 64
                    );
                    assert_eq!(block.prefix_len(), 26);
                    model.insert(node, i);
                }
                (Err(Error::Exhausted(_)), None) => {}
                (got, want) => panic!("allocate {node}: got {got:?}, model {want:?}"),
            }
        } else {
            let got = a.release(&node).map(|b| u32::from(b.network()));
            let want = model
                .remove(&node)
                .map(|i| u32::from(pool.network()) + i * 64);
            assert_eq!(got, want);
        }
        let blocks: Vec<Ipv4Net> = a.allocations().into_values().collect();
        for (i, x) in blocks.iter().enumerate() {
            assert!(pool.contains(x));
            for y in &blocks[i + 1..] {
                assert!(!overlaps(x, y), "{x} overlaps {y}");
            }
        }
    }
}

#[test]
fn restart_from_allocations_reproduces_the_allocator() {
    let mut a = PodCidrAllocator::new(&[net("172.20.0.0/16")], 24).unwrap();
    for n in ["a", "b", "c", "d"] {
        a.allocate(n).unwrap();
    }
    a.release("b");
    let mut restarted = PodCidrAllocator::new(&[net("172.20.0.0/16")], 24).unwrap();
    for (node, block) in a.allocations() {
        restarted.restore(&node, block).unwrap();
    }
    assert_eq!(restarted.allocations(), a.allocations());
    assert_eq!(restarted.allocate("e").unwrap(), a.allocate("e").unwrap());
    assert_eq!(restarted.allocate("e").unwrap(), net("172.20.1.0/24"));
}

#[test]
fn node_allocator_reserves_network_and_broadcast() {
    let mut a = NodeIpAllocator::new(&[net("172.20.1.0/24")]);
    assert_eq!(a.capacity(), 254);
    assert_eq!(a.cidrs(), &[net("172.20.1.0/24")]);
    assert_eq!(a.allocate_next("router").unwrap(), ip("172.20.1.1"));
    assert_eq!(a.allocate_next("health").unwrap(), ip("172.20.1.2"));
    for bad in ["172.20.1.0", "172.20.1.255", "172.20.2.1"] {
        assert!(
            matches!(a.allocate(ip(bad), "x"), Err(Error::OutOfRange(_))),
            "{bad}"
        );
    }
    for i in 3..=254 {
        assert_eq!(
            a.allocate_next(&format!("pod{i}")).unwrap(),
            Ipv4Addr::new(172, 20, 1, i)
        );
    }
    assert!(matches!(a.allocate_next("more"), Err(Error::Exhausted(_))));
    assert_eq!(a.release(ip("172.20.1.7")).as_deref(), Some("pod7"));
    assert_eq!(a.allocate_next("again").unwrap(), ip("172.20.1.7"));
    assert_eq!(a.allocated().len(), 254);
}

#[test]
fn node_allocator_specific_addresses_are_idempotent_per_owner() {
    let mut a = NodeIpAllocator::new(&[net("10.0.0.0/30"), net("10.0.1.0/29")]);
    assert_eq!(a.capacity(), 2 + 6);
    a.allocate(ip("10.0.0.1"), "c1").unwrap();
    a.allocate(ip("10.0.0.1"), "c1").unwrap();
    assert_eq!(
        a.allocate(ip("10.0.0.1"), "c2").unwrap_err(),
        Error::Conflict("10.0.0.1 is already allocated to c1".into())
    );
    assert_eq!(a.owner(ip("10.0.0.1")), Some("c1"));
    assert_eq!(a.allocate_next("c2").unwrap(), ip("10.0.0.2"));
    // The first CIDR is full; the next one's first host follows.
    assert_eq!(a.allocate_next("c2").unwrap(), ip("10.0.1.1"));
    assert_eq!(a.release_owner("c2"), vec![ip("10.0.0.2"), ip("10.0.1.1")]);
    assert_eq!(a.release(ip("10.0.0.2")), None);
    assert_eq!(a.allocated().len(), 1);
}

#[test]
fn tiny_and_overlapping_cidrs() {
    let a = NodeIpAllocator::new(&[net("10.0.0.0/31"), net("10.0.0.4/32")]);
    assert_eq!(a.capacity(), 0);
    let mut a =
        NodeIpAllocator::new(&[net("10.0.0.0/24"), net("10.0.0.128/25"), net("10.0.0.7/24")]);
    assert_eq!(a.cidrs(), &[net("10.0.0.0/24")]);
    assert_eq!(a.capacity(), 254);
    assert_eq!(a.allocate_next("x").unwrap(), ip("10.0.0.1"));
    let mut empty = NodeIpAllocator::new(&[]);
    assert!(matches!(empty.allocate_next("x"), Err(Error::Exhausted(_))));
}

#[test]
fn randomized_node_allocations_have_one_owner_per_ip_and_survive_serde() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut a = NodeIpAllocator::new(&[net("172.20.3.0/27"), net("172.20.9.0/28")]);
    assert_eq!(a.capacity(), 30 + 14);
    for step in 0..4_000 {
        let owner = format!("pod{}", rng.random_range(0..60));
        match rng.random_range(0..4) {
            0 => {
                if let Ok(got) = a.allocate_next(&owner) {
                    assert_eq!(a.owner(got), Some(owner.as_str()));
                } else {
                    assert_eq!(a.allocated().len() as u32, a.capacity());
                }
            }
            1 => {
                let target = Ipv4Addr::new(
                    172,
                    20,
                    if rng.random_bool(0.5) { 3 } else { 9 },
                    rng.random_range(0..32),
                );
                let before = a.owner(target).map(str::to_string);
                match a.allocate(target, &owner) {
                    Ok(()) => {
                        assert!(before.is_none() || before.as_deref() == Some(owner.as_str()))
                    }
                    Err(Error::Conflict(_)) => {
                        assert!(before.as_ref().is_some_and(|b| *b != owner))
                    }
                    Err(Error::OutOfRange(_)) => assert!(!a.is_usable(target)),
                    Err(e) => panic!("{e}"),
                }
                // An accepted address keeps exactly one owner; a rejected one is unchanged.
                if a.is_usable(target) && before.is_none() {
                    assert_eq!(a.owner(target), Some(owner.as_str()));
                } else {
                    assert_eq!(a.owner(target).map(str::to_string), before);
                }
            }
            2 => {
                let held: Vec<Ipv4Addr> = a.allocated().keys().copied().collect();
                if !held.is_empty() {
                    let victim = held[rng.random_range(0..held.len())];
                    assert!(a.release(victim).is_some());
                    assert_eq!(a.owner(victim), None);
                }
            }
            _ => {
                let json = serde_json::to_string(&a).unwrap();
                let back: NodeIpAllocator = serde_json::from_str(&json).unwrap();
                assert_eq!(back, a, "step {step}");
                a = back;
            }
        }
        assert!(a.allocated().keys().all(|ip| a.is_usable(*ip)));
        assert!(a.allocated().len() as u32 <= a.capacity());
    }
}

#[test]
fn persisted_state_restores_lowest_free_behaviour() {
    let mut a = NodeIpAllocator::new(&[net("172.20.0.0/24")]);
    for owner in ["router", "health", "p1", "p2"] {
        a.allocate_next(owner).unwrap();
    }
    a.release(ip("172.20.0.3"));
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["allocated"]["172.20.0.1"], "router");
    let mut restored: NodeIpAllocator = serde_json::from_value(json).unwrap();
    assert_eq!(restored.allocate_next("p3").unwrap(), ip("172.20.0.3"));
    assert_eq!(restored.allocate_next("p4").unwrap(), ip("172.20.0.5"));
}

#[test]
fn corrupt_persisted_state_is_rejected() {
    let outside = r#"{"cidrs":["172.20.0.0/24"],"allocated":{"172.20.1.5":"p"}}"#;
    let err = serde_json::from_str::<NodeIpAllocator>(outside).unwrap_err();
    assert!(
        err.to_string()
            .contains("172.20.1.5 is not a usable address"),
        "{err}"
    );
    let overlap = r#"{"cidrs":["172.20.0.0/24","172.20.0.0/25"],"allocated":{}}"#;
    assert!(serde_json::from_str::<NodeIpAllocator>(overlap).is_err());
}
