//! BPF_PROG_TEST_RUN packet tests of the programs and map round trips.
//! They need root and a mounted bpffs (scripts/setup.sh); they fail, not
//! skip, without them.

use std::sync::atomic::{AtomicUsize, Ordering};

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};

use super::*;

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;
const SKB_SIZE: usize = 192;
/// Offsets in `struct __sk_buff`.
const SKB_PKT_TYPE: usize = 4;
const SKB_MARK: usize = 8;
/// `__sk_buff.cb[0]`.
const SKB_CB: usize = 48;
const SKB_GSO_SIZE: usize = 176;
/// `skb->pkt_type` of a frame addressed to this host.
const PACKET_HOST: u32 = 0;
/// A stand-in tunnel device ifindex (no device is needed for test runs).
const TUNNEL_IFINDEX: u32 = 42;

/// The compiled `bpf/tests/tunnel_test.c` (wrappers exposing tunnel keys).
static TUNNEL_TEST_OBJ: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tests_tunnel_test.o"));

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const NODE_MAC_A: [u8; 6] = [0x02, 0, 0, 0, 1, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x14];
const NODE_MAC_B: [u8; 6] = [0x02, 0, 0, 0, 1, 0x14];

/// A per-test bpffs directory, removed on drop.
struct BpfDir(PathBuf);

impl BpfDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/dpt{}-{n}",
            std::process::id()
        )))
    }
}

impl Drop for BpfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path) -> DatapathConfig {
    DatapathConfig {
        bpf_dir: dir.to_path_buf(),
        router_ip: ROUTER,
        node_ip: LOCAL_NODE,
        native_devices: vec![],
        cluster_id: 0,
        tunnel: None,
    }
}

/// A datapath with endpoint A on ifindex 1 (the loopback device, which
/// BPF_PROG_TEST_RUN uses as skb->dev) and endpoint B on ifindex 99.
fn setup() -> (Datapath, BpfDir) {
    setup_with(None)
}

/// [`setup`] with an optional tunnel (device ifindex [`TUNNEL_IFINDEX`]).
fn setup_with(tunnel: Option<TunnelConfig>) -> (Datapath, BpfDir) {
    let dir = BpfDir::new();
    let cfg = DatapathConfig {
        tunnel,
        ..config(&dir.0)
    };
    let dp = Datapath::open_with(&cfg, TUNNEL_IFINDEX).expect("load datapath");
    let a = EndpointInfo {
        ifindex: 1,
        lxc_id: 100,
        flags: 0,
        mac: MAC_A,
        node_mac: NODE_MAC_A,
        sec_id: 1000,
    };
    let b = EndpointInfo {
        ifindex: 99,
        lxc_id: 200,
        flags: 0,
        mac: MAC_B,
        node_mac: NODE_MAC_B,
        sec_id: 70000,
    };
    dp.lxc_upsert(IP_A, &a).unwrap();
    dp.lxc_upsert(IP_B, &b).unwrap();
    (dp, dir)
}

struct Run {
    verdict: u32,
    data: Vec<u8>,
    mark: u32,
    /// `__sk_buff.pkt_type` after the run (the test device sets it from
    /// the destination MAC: [`PACKET_HOST`] for zeros, its own address).
    pkt_type: u32,
    /// `__sk_buff.cb[0..5]` after the run.
    cb: [u32; 5],
}

/// The `__sk_buff` fields a test run starts with.
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    cb: [u32; 5],
    /// Non-zero: a GSO packet of segments with this much payload.
    gso_size: u32,
}

fn run(dp: &Datapath, p: Program, pkt: &[u8]) -> Run {
    run_ctx(dp, p, pkt, Ctx::default())
}

fn run_ctx(dp: &Datapath, p: Program, pkt: &[u8], ctx: Ctx) -> Run {
    let obj = match p {
        Program::FromContainer => &dp.lxc_obj,
        Program::FromOverlay => &dp.overlay_obj,
        Program::FromHost | Program::ToHost | Program::FromNetdev => &dp.host_obj,
    };
    run_prog(obj, p.name(), pkt, ctx)
}

/// Run program `name` of `obj` on `pkt` with the `__sk_buff` of `ctx`.
fn run_prog(obj: &Ebpf, name: &str, pkt: &[u8], ctx: Ctx) -> Run {
    let prog: &SchedClassifier = obj.program(name).unwrap().try_into().unwrap();
    let mut out = vec![0u8; pkt.len() + 256];
    let mut ctx_in = [0u8; SKB_SIZE];
    for (i, v) in ctx.cb.iter().enumerate() {
        ctx_in[SKB_CB + 4 * i..SKB_CB + 4 * i + 4].copy_from_slice(&v.to_ne_bytes());
    }
    ctx_in[SKB_GSO_SIZE..SKB_GSO_SIZE + 4].copy_from_slice(&ctx.gso_size.to_ne_bytes());
    let mut ctx = [0u8; SKB_SIZE];
    let res = prog
        .test_run(TestRunOptions {
            data_in: Some(pkt),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx_in),
            ctx_out: Some(&mut ctx),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(res.data_size_out as usize);
    let word = |off: usize| u32::from_ne_bytes(ctx[off..off + 4].try_into().unwrap());
    Run {
        verdict: res.return_value,
        data: out,
        mark: word(SKB_MARK),
        pkt_type: word(SKB_PKT_TYPE),
        cb: std::array::from_fn(|i| word(SKB_CB + 4 * i)),
    }
}

/// The test wrappers of `bpf/tests/tunnel_test.c`, loaded against `dp`'s
/// pinned maps with the same globals as `dp` (tunnel on, [`TUNNEL_IFINDEX`]).
fn tunnel_test_obj(dp: &Datapath) -> Ebpf {
    let cfg = DatapathConfig {
        tunnel: Some(VXLAN),
        ..config(dp.bpf_dir())
    };
    let globals = Globals::new(&cfg, TUNNEL_IFINDEX);
    let mut obj = globals
        .load(TUNNEL_TEST_OBJ, "tests_tunnel_test.o", dp.bpf_dir())
        .unwrap();
    load_programs(
        &mut obj,
        &[
            "test_from_container_key",
            "test_from_host_key",
            "test_from_overlay_key",
        ],
    )
    .unwrap();
    obj
}

fn arp_request(sha: [u8; 6], sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0xff; 6];
    p.extend_from_slice(&sha);
    p.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    p.extend_from_slice(&sha);
    p.extend_from_slice(&sip.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&tip.octets());
    p
}

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Ethernet + IPv4 (ICMP echo) from `src` to `dst`.
fn ipv4_packet(dmac: [u8; 6], smac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&dmac);
    p.extend_from_slice(&smac);
    p.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    p
}

/// Recompute the checksum of the IPv4 header at offset 14 of `frame`.
fn refresh_ipv4_csum(frame: &mut [u8]) {
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = csum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// [`ipv4_packet`] padded to an IPv4 total length of `ip_len`.
fn sized_ipv4_packet(
    dmac: [u8; 6],
    smac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ip_len: u16,
) -> Vec<u8> {
    let mut p = ipv4_packet(dmac, smac, src, dst);
    p.resize(14 + usize::from(ip_len), 0);
    p[16..18].copy_from_slice(&ip_len.to_be_bytes());
    refresh_ipv4_csum(&mut p);
    p
}

fn identity_mark(id: u32) -> u32 {
    ((id & 0xffff) << 16) | c::MARK_MAGIC_IDENTITY | ((id >> 16) & 0xff)
}

fn metric(dp: &Datapath, reason: u8, dir: u8) -> u64 {
    dp.metrics_dump()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.reason == reason && k.dir == dir)
        .map_or(0, |(_, v)| v.count)
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn arp_request_for_gateway_is_answered_with_node_mac() {
    let (dp, _dir) = setup();
    let r = run(
        &dp,
        Program::FromContainer,
        &arp_request(MAC_A, IP_A, ROUTER),
    );
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    let d = &r.data;
    assert_eq!(&d[0..6], &MAC_A, "eth dst = requester");
    assert_eq!(&d[6..12], &NODE_MAC_A, "eth src = host veth MAC");
    assert_eq!(&d[12..14], &[0x08, 0x06]);
    assert_eq!(&d[20..22], &[0, 2], "ARP reply");
    assert_eq!(&d[22..28], &NODE_MAC_A, "sha");
    assert_eq!(&d[28..32], &ROUTER.octets(), "spa");
    assert_eq!(&d[32..38], &MAC_A, "tha");
    assert_eq!(&d[38..42], &IP_A.octets(), "tpa");
    // Any other address is answered too; the pod's own is not (DAD).
    let other = run(&dp, Program::FromContainer, &arp_request(MAC_A, IP_A, IP_B));
    assert_eq!(other.verdict, TC_ACT_REDIRECT);
    let own = run(&dp, Program::FromContainer, &arp_request(MAC_A, IP_A, IP_A));
    assert_eq!(own.verdict, TC_ACT_OK);
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn ipv4_to_local_endpoint_is_redirected_with_rewritten_macs() {
    let (mut dp, _dir) = setup();
    // Addressed to the host-side veth's MAC: another host's for the
    // test device, hence not PACKET_HOST on the way in.
    let pkt = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, IP_B);
    let r = run(&dp, Program::FromContainer, &pkt);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_eq!(&r.data[0..6], &MAC_B);
    assert_eq!(&r.data[6..12], &NODE_MAC_B);
    // Delivered into the pod's namespace without being parsed again: the
    // program marks the frame as addressed to the pod.
    assert_eq!(r.pkt_type, PACKET_HOST);
    assert_eq!(r.data[14 + 8], 63, "TTL decremented");
    assert_eq!(csum(&r.data[14..34]), 0, "IPv4 checksum still valid");
    assert_eq!(&r.data[34..], &pkt[34..], "payload untouched");
    assert_eq!(r.mark, identity_mark(1000));
    assert!(metric(&dp, 0, 2) >= 1);

    // The trace notification: to-endpoint 200 from endpoint 100.
    let mut ring = dp.events.take().unwrap();
    let item = ring.next().expect("a trace event");
    let Some(Notification::Trace(t)) = Notification::decode(&item) else {
        panic!("not a trace: {:?}", &item[..8]);
    };
    assert_eq!((t.obs_point, t.source, t.dst_id), (0, 100, 200));
    assert_eq!((t.src_label, t.dst_label, t.ifindex), (1000, 70000, 99));
    assert_eq!(t.len_orig as usize, pkt.len());
    assert_eq!(&t.data[..], &r.data[..], "captured bytes");
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn ipv4_elsewhere_goes_to_the_stack() {
    let (dp, _dir) = setup();
    let pkt = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, Ipv4Addr::new(192, 168, 10, 101));
    let r = run(&dp, Program::FromContainer, &pkt);
    assert_eq!(r.verdict, TC_ACT_OK);
    assert_eq!(r.data, pkt);
    assert_eq!(r.mark, 0);
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn spoofed_source_is_dropped_and_counted() {
    let (dp, _dir) = setup();
    // Unknown source address.
    let unknown = ipv4_packet(NODE_MAC_A, MAC_A, Ipv4Addr::new(10, 0, 0, 99), IP_B);
    assert_eq!(
        run(&dp, Program::FromContainer, &unknown).verdict,
        TC_ACT_SHOT
    );
    // B's address arriving on A's veth.
    let stolen = ipv4_packet(NODE_MAC_A, MAC_A, IP_B, IP_A);
    assert_eq!(
        run(&dp, Program::FromContainer, &stolen).verdict,
        TC_ACT_SHOT
    );
    assert_eq!(metric(&dp, c::DROP_INVALID_SIP, 2), 2);
    // IPv6 is not supported.
    let mut v6 = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, IP_B);
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    v6.resize(14 + 40 + 8, 0); // the kernel checks for a full IPv6 header
    assert_eq!(run(&dp, Program::FromContainer, &v6).verdict, TC_ACT_SHOT);
    assert_eq!(metric(&dp, c::DROP_UNKNOWN_L3, 2), 1);
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn host_program_redirects_to_endpoint() {
    let (dp, _dir) = setup();
    let pkt = ipv4_packet([0; 6], [0; 6], ROUTER, IP_B);
    let r = run(&dp, Program::FromHost, &pkt);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_eq!(&r.data[0..6], &MAC_B);
    assert_eq!(&r.data[6..12], &NODE_MAC_B);
    assert_eq!(r.data[14 + 8], 64, "no TTL change on the host path");
    assert_eq!(r.mark, identity_mark(1));
    let elsewhere = ipv4_packet([0; 6], [0; 6], ROUTER, Ipv4Addr::new(10, 0, 1, 5));
    assert_eq!(run(&dp, Program::FromHost, &elsewhere).verdict, TC_ACT_OK);
    assert_eq!(run(&dp, Program::ToHost, &pkt).verdict, TC_ACT_OK);
    // From another node (native routing): straight into the local pod,
    // forwarded as the stack would (TTL decremented, checksum fixed), the
    // source's identity in the mark (world: not in the ipcache).
    let from_peer = ipv4_packet([0; 6], [0; 6], REMOTE_POD, IP_B);
    let r = run(&dp, Program::FromNetdev, &from_peer);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_eq!(&r.data[0..6], &MAC_B);
    assert_eq!(&r.data[6..12], &NODE_MAC_B);
    assert_eq!(&r.data[12..], &ttl_decremented(&from_peer)[12..]);
    assert_eq!(r.mark, identity_mark(2));
    // Anything else goes to the stack, untouched: not a local pod, a frame
    // for another host, a TTL the stack answers with "time exceeded".
    let mut other_host = from_peer.clone();
    other_host[0..6].copy_from_slice(&[0x02, 1, 2, 3, 4, 5]);
    let mut expiring = from_peer.clone();
    expiring[14 + 8] = 1;
    refresh_ipv4_csum(&mut expiring);
    for f in [elsewhere, other_host, expiring] {
        let r = run(&dp, Program::FromNetdev, &f);
        assert_eq!((r.verdict, r.mark), (TC_ACT_OK, 0));
        assert_eq!(r.data, f);
    }
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn maps_round_trip_and_survive_reload() {
    let (dp, dir) = setup();
    let net: Ipv4Net = "10.0.1.0/24".parse().unwrap();
    let e = IpcacheEntry {
        sec_identity: 2,
        tunnel_endpoint: Some(Ipv4Addr::new(192, 168, 10, 101)),
        encrypt_key: 0,
    };
    dp.ipcache_upsert(net, &e).unwrap();
    let host: Ipv4Net = "10.0.0.1/32".parse().unwrap();
    let h = IpcacheEntry {
        sec_identity: 1,
        tunnel_endpoint: None,
        encrypt_key: 0,
    };
    dp.ipcache_upsert(host, &h).unwrap();
    assert_eq!(dp.ipcache_dump().unwrap(), vec![(host, h), (net, e)]);

    // A second load (agent restart) reuses the pinned maps.
    let dp2 = Datapath::open(&config(&dir.0)).unwrap();
    let eps = dp2.lxc_dump().unwrap();
    assert_eq!(
        eps.iter().map(|(ip, _)| *ip).collect::<Vec<_>>(),
        vec![IP_A, IP_B]
    );
    assert_eq!(eps[1].1.mac, MAC_B);
    assert_eq!(eps[1].1.sec_id, 70000);
    assert_eq!(dp2.ipcache_dump().unwrap().len(), 2);

    dp2.lxc_delete(IP_A).unwrap();
    dp2.lxc_delete(IP_A).unwrap();
    dp2.ipcache_delete(net).unwrap();
    dp2.ipcache_delete(net).unwrap();
    assert_eq!(dp.lxc_dump().unwrap().len(), 1);
    assert_eq!(dp.ipcache_dump().unwrap(), vec![(host, h)]);
}

const VXLAN: TunnelConfig = TunnelConfig {
    protocol: TunnelProtocol::Vxlan,
    port: 8472,
};
/// A pod on another node, and that node's IP (the tunnel endpoint).
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
const REMOTE_NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 101);
const REMOTE_ID: u32 = 70001;
/// This node's IP (the tunnel source).
const LOCAL_NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 100);

/// ipcache as the agent fills it in tunnel mode: the remote pod CIDR
/// (world, tunnel endpoint) and the remote pod (its identity, same
/// endpoint); a prefix without a tunnel endpoint.
fn remote_node_entries(dp: &Datapath) {
    let tep = Some(REMOTE_NODE);
    let cidr = IpcacheEntry {
        sec_identity: 2,
        tunnel_endpoint: tep,
        encrypt_key: 0,
    };
    dp.ipcache_upsert("10.0.1.0/24".parse().unwrap(), &cidr)
        .unwrap();
    let pod = IpcacheEntry {
        sec_identity: REMOTE_ID,
        ..cidr
    };
    dp.ipcache_upsert(Ipv4Net::from(REMOTE_POD), &pod).unwrap();
    let plain = IpcacheEntry {
        sec_identity: 2,
        tunnel_endpoint: None,
        encrypt_key: 0,
    };
    dp.ipcache_upsert("10.0.2.0/24".parse().unwrap(), &plain)
        .unwrap();
}

fn next_trace(dp: &mut Datapath) -> TraceNotification {
    let ring = dp.events.as_mut().unwrap();
    loop {
        let item = ring.next().expect("a trace event");
        if let Some(Notification::Trace(t)) = Notification::decode(&item) {
            return t;
        }
    }
}

/// This node's MAC on the test underlay, and the remote node's.
const UNDERLAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x64];
const REMOTE_NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x65];
/// Tunnel endpoints: behind a gateway without a neighbour entry, and
/// unroutable.
const NO_NEIGH_NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 5);
const UNROUTABLE_NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Run a command (iproute2, sysctl), which must succeed.
fn run_cmd(cmd: &[&str]) {
    let st = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap();
    assert!(st.success(), "{cmd:?}");
}

/// Run `f` on a thread in a new network namespace (BPF_PROG_TEST_RUN and
/// bpf_fib_lookup use the caller's) with an underlay: veth `und0`
/// (LOCAL_NODE/24, UNDERLAY_MAC, MTU 1500), REMOTE_NODE as a permanent
/// neighbour, 192.168.20.0/24 via a gateway with no neighbour entry, and
/// forwarding on. The namespace goes away with the thread.
fn in_underlay_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            let local = format!("{LOCAL_NODE}/24");
            let (umac, rmac) = (
                net::format_mac(&UNDERLAY_MAC),
                net::format_mac(&REMOTE_NODE_MAC),
            );
            let remote = REMOTE_NODE.to_string();
            for cmd in [
                vec!["ip", "link", "set", "lo", "up"],
                vec![
                    "ip", "link", "add", "und0", "address", &umac, "type", "veth", "peer", "name",
                    "und1",
                ],
                vec!["ip", "link", "set", "und1", "up"],
                vec!["ip", "addr", "add", &local, "dev", "und0"],
                vec!["ip", "link", "set", "und0", "up"],
                vec![
                    "ip",
                    "neigh",
                    "add",
                    &remote,
                    "lladdr",
                    &rmac,
                    "dev",
                    "und0",
                    "nud",
                    "permanent",
                ],
                vec![
                    "ip",
                    "route",
                    "add",
                    "192.168.20.0/24",
                    "via",
                    "192.168.10.102",
                    "dev",
                    "und0",
                ],
                vec!["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ] {
                run_cmd(&cmd);
            }
            f()
        })
        .join()
        .unwrap()
    })
}

/// Tunnel endpoints besides REMOTE_NODE: 10.0.3.0/24 behind
/// NO_NEIGH_NODE, 10.0.4.0/24 behind UNROUTABLE_NODE.
fn more_remote_nodes(dp: &Datapath) {
    for (cidr, node) in [
        ("10.0.3.0/24", NO_NEIGH_NODE),
        ("10.0.4.0/24", UNROUTABLE_NODE),
    ] {
        let e = IpcacheEntry {
            sec_identity: 2,
            tunnel_endpoint: Some(node),
            encrypt_key: 0,
        };
        dp.ipcache_upsert(cidr.parse().unwrap(), &e).unwrap();
    }
}

/// Check a VXLAN frame built by the programs around `inner` (the frame
/// as it must come out of the tunnel): outer MACs, IPv4 from LOCAL_NODE
/// to `dst` (TTL 64, valid checksum), UDP to 8472 with a zero checksum,
/// VNI `vni`.
fn assert_vxlan(frame: &[u8], dmac: [u8; 6], dst: Ipv4Addr, vni: u32, inner: &[u8]) {
    assert_eq!(frame.len(), inner.len() + 50, "50 bytes of headers");
    assert_eq!(&frame[0..6], &dmac, "outer eth dst");
    assert_eq!(&frame[6..12], &UNDERLAY_MAC, "outer eth src");
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let ip = &frame[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        frame.len() - 14
    );
    assert_eq!((ip[8], ip[9]), (64, 17), "TTL 64, UDP");
    assert_eq!(&ip[12..16], &LOCAL_NODE.octets());
    assert_eq!(&ip[16..20], &dst.octets());
    assert_eq!(csum(ip), 0, "outer IPv4 checksum");
    let udp = &frame[34..42];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert!((32768..61000).contains(&sport), "source port {sport}");
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 8472);
    assert_eq!(
        usize::from(u16::from_be_bytes([udp[4], udp[5]])),
        frame.len() - 34
    );
    assert_eq!(&udp[6..8], &[0, 0], "zero UDP checksum");
    assert_eq!(&frame[42..46], &[0x08, 0, 0, 0], "VXLAN I flag");
    assert_eq!(
        u32::from_be_bytes(frame[46..50].try_into().unwrap()),
        vni << 8
    );
    assert_eq!(&frame[50..], inner, "the inner frame");
}

/// `pkt` as it leaves the tunnel: TTL decremented, checksum fixed.
fn ttl_decremented(pkt: &[u8]) -> Vec<u8> {
    let mut p = pkt.to_vec();
    p[14 + 8] -= 1;
    refresh_ipv4_csum(&mut p);
    p
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn pod_to_remote_pod_is_encapsulated_with_its_identity_as_vni() {
    in_underlay_netns(|| {
        let (mut dp, _dir) = setup_with(Some(VXLAN));
        remote_node_entries(&dp);
        more_remote_nodes(&dp);
        let pkt = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, REMOTE_POD);
        let r = run(&dp, Program::FromContainer, &pkt);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        // VNI = the pod's identity; the inner frame keeps its MACs.
        assert_vxlan(
            &r.data,
            REMOTE_NODE_MAC,
            REMOTE_NODE,
            1000,
            &ttl_decremented(&pkt),
        );
        let t = next_trace(&mut dp);
        assert_eq!(t.obs_point, c::TRACE_TO_OVERLAY);
        assert_eq!((t.source, t.src_label, t.dst_label), (100, 1000, REMOTE_ID));
        assert_eq!(&t.data[..12], &pkt[..12], "traced before encapsulation");
        assert!(metric(&dp, 0, 2) >= 1);
        // The pod CIDR entry (no /32) is enough: VNI is still the source.
        let other = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, Ipv4Addr::new(10, 0, 1, 77));
        let r = run(&dp, Program::FromContainer, &other);
        assert_vxlan(
            &r.data,
            REMOTE_NODE_MAC,
            REMOTE_NODE,
            1000,
            &ttl_decremented(&other),
        );
        // A next hop without a neighbour entry: encapsulated all the same
        // (bpf_redirect_neigh resolves it).
        let pkt3 = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, Ipv4Addr::new(10, 0, 3, 9));
        let r = run(&dp, Program::FromContainer, &pkt3);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        assert_eq!(&r.data[30..34], &NO_NEIGH_NODE.octets());
        assert_eq!(&r.data[50..], &ttl_decremented(&pkt3)[..]);

        let obj = tunnel_test_obj(&dp);
        // An endpoint the FIB cannot reach, or a packet that would not
        // fit the underlay once encapsulated: the tunnel device with a key
        // (VNI = source identity, remote = the node, TTL 64), frame as is.
        let big = sized_ipv4_packet(NODE_MAC_A, MAC_A, IP_A, REMOTE_POD, 1460);
        let pkt4 = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, Ipv4Addr::new(10, 0, 4, 9));
        for (p, node) in [(&pkt4, UNROUTABLE_NODE), (&big, REMOTE_NODE)] {
            let k = run_prog(&obj, "test_from_container_key", p, Ctx::default());
            assert_eq!(k.verdict, TC_ACT_REDIRECT);
            assert_eq!((k.cb[3], k.cb[0], k.cb[2]), (1, 1000, 64), "a tunnel key");
            assert_eq!(Ipv4Addr::from(k.cb[1]), node);
            assert_eq!(k.data, ttl_decremented(p));
        }
        // One byte less fits: encapsulated here.
        let fits = sized_ipv4_packet(NODE_MAC_A, MAC_A, IP_A, REMOTE_POD, 1450);
        let k = run_prog(&obj, "test_from_container_key", &fits, Ctx::default());
        assert_eq!((k.verdict, k.cb[3]), (TC_ACT_REDIRECT, 0));
        assert_eq!(k.data.len(), fits.len() + 50);

        // No tunnel endpoint, or no ipcache entry: the stack, no key.
        for dst in [Ipv4Addr::new(10, 0, 2, 5), Ipv4Addr::new(192, 168, 10, 101)] {
            let p = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, dst);
            let k = run_prog(&obj, "test_from_container_key", &p, Ctx::default());
            assert_eq!((k.verdict, k.cb[3]), (TC_ACT_OK, 0), "{dst}");
            assert_eq!(k.data, p);
        }
        // Local delivery is unchanged in tunnel mode.
        let local = run(
            &dp,
            Program::FromContainer,
            &ipv4_packet(NODE_MAC_A, MAC_A, IP_A, IP_B),
        );
        assert_eq!(
            (local.verdict, local.mark),
            (TC_ACT_REDIRECT, identity_mark(1000))
        );
        assert_eq!(&local.data[0..6], &MAC_B);
    });
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn native_mode_ignores_tunnel_endpoints() {
    let (dp, _dir) = setup();
    remote_node_entries(&dp);
    let pkt = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, REMOTE_POD);
    let r = run(&dp, Program::FromContainer, &pkt);
    assert_eq!(r.verdict, TC_ACT_OK);
    assert_eq!(r.data, pkt);
    let h = run(
        &dp,
        Program::FromHost,
        &ipv4_packet([0; 6], [0; 6], ROUTER, REMOTE_POD),
    );
    assert_eq!(h.verdict, TC_ACT_OK);
}

/// Ethernet + IPv4 + TCP (20-byte header, ACK) from `src` to `dst` with
/// `payload` bytes of data (checksums other than IPv4's are not filled in).
fn tcp_packet(dmac: [u8; 6], smac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, payload: u16) -> Vec<u8> {
    let mut p = ipv4_packet(dmac, smac, src, dst);
    p.truncate(34);
    p[23] = 6; // TCP
    p.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    p.resize(p.len() + usize::from(payload), 0xab);
    let ip_len = (p.len() - 14) as u16;
    p[16..18].copy_from_slice(&ip_len.to_be_bytes());
    refresh_ipv4_csum(&mut p);
    p
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn pod_traffic_the_kernel_would_forward_is_routed_by_the_programs() {
    in_underlay_netns(|| {
        let (mut dp, _dir) = setup();
        remote_node_entries(&dp);
        // Native routing: another node's pod CIDR via that node, one
        // behind a next hop without a neighbour entry, one with a route
        // MTU (locked: forwarding ignores an unlocked route MTU, in the
        // stack and in the FIB helper alike), and a route back out of the
        // endpoint's own device.
        let remote = REMOTE_NODE.to_string();
        for route in [
            &["10.0.1.0/24", "via", &remote, "dev", "und0"][..],
            &["10.0.3.0/24", "via", "192.168.10.102", "dev", "und0"],
            &[
                "10.0.6.0/24",
                "via",
                &remote,
                "dev",
                "und0",
                "mtu",
                "lock",
                "1400",
            ],
            &["10.0.7.0/24", "dev", "lo"],
        ] {
            run_cmd(&[&["ip", "route", "add"][..], route].concat());
        }
        let und0 = nix::net::if_::if_nametoindex("und0").unwrap();

        // To a pod on another node (addressed to the pod's gateway, the
        // test device): TTL decremented, out of und0 to the next hop, whose
        // neighbour entry writes the MACs.
        let pkt = ipv4_packet([0; 6], MAC_A, IP_A, REMOTE_POD);
        let r = run(&dp, Program::FromContainer, &pkt);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        assert_eq!(r.data, ttl_decremented(&pkt));
        assert_eq!(r.mark, 0);
        let t = next_trace(&mut dp);
        assert_eq!(t.obs_point, c::TRACE_TO_NETWORK);
        assert_eq!((t.source, t.src_label, t.dst_label), (100, 1000, REMOTE_ID));
        assert_eq!((t.dst_id, t.ifindex), (0, und0), "the device the FIB names");
        assert!(metric(&dp, 0, 2) >= 1);
        // A next hop to resolve, and a packet that just fits the route
        // MTU: forwarded all the same.
        let no_neigh = ipv4_packet([0; 6], MAC_A, IP_A, Ipv4Addr::new(10, 0, 3, 9));
        let fits = sized_ipv4_packet([0; 6], MAC_A, IP_A, Ipv4Addr::new(10, 0, 6, 9), 1400);
        for p in [&no_neigh, &fits] {
            let r = run(&dp, Program::FromContainer, p);
            assert_eq!((r.verdict, &r.data), (TC_ACT_REDIRECT, &ttl_decremented(p)));
            assert_eq!(next_trace(&mut dp).ifindex, und0);
        }
        // GSO packets are checked segment by segment: 20 + 20 + 1360
        // bytes fit the route MTU of 1400, one more byte does not.
        let gso = tcp_packet([0; 6], MAC_A, IP_A, Ipv4Addr::new(10, 0, 6, 9), 3000);
        for (gso_size, verdict) in [(1360, TC_ACT_REDIRECT), (1361, TC_ACT_OK)] {
            let r = run_ctx(
                &dp,
                Program::FromContainer,
                &gso,
                Ctx {
                    gso_size,
                    ..Ctx::default()
                },
            );
            assert_eq!(r.verdict, verdict, "gso_size {gso_size}");
        }

        // The stack's, untouched: the node's own address, no route, too
        // big for the route (the stack sends "fragmentation needed"),
        // TTL 1 ("time exceeded"), IP options, a frame for another host,
        // back out of the endpoint's device (an ICMP redirect).
        let too_big = sized_ipv4_packet([0; 6], MAC_A, IP_A, Ipv4Addr::new(10, 0, 6, 9), 1401);
        let mut expiring = pkt.clone();
        expiring[14 + 8] = 1;
        refresh_ipv4_csum(&mut expiring);
        let mut options = pkt.clone();
        options[14] = 0x46;
        options.splice(34..34, [1, 1, 1, 0]); // NOP NOP NOP EOL
        options[17] += 4;
        refresh_ipv4_csum(&mut options);
        let for_other_host = ipv4_packet(NODE_MAC_A, MAC_A, IP_A, REMOTE_POD);
        let back = ipv4_packet([0; 6], MAC_A, IP_A, Ipv4Addr::new(10, 0, 7, 1));
        for (what, p) in [
            ("own address", ipv4_packet([0; 6], MAC_A, IP_A, LOCAL_NODE)),
            (
                "no route",
                ipv4_packet([0; 6], MAC_A, IP_A, UNROUTABLE_NODE),
            ),
            ("too big", too_big),
            ("TTL 1", expiring),
            ("IP options", options),
            ("another host's frame", for_other_host),
            ("back where it came from", back),
        ] {
            let r = run(&dp, Program::FromContainer, &p);
            assert_eq!((r.verdict, &r.data), (TC_ACT_OK, &p), "{what}");
            let t = next_trace(&mut dp);
            assert_eq!((t.obs_point, t.ifindex), (c::TRACE_TO_STACK, 1), "{what}");
        }
        // Forwarding off on the endpoint's device: the stack's too.
        run_cmd(&["sysctl", "-qw", "net.ipv4.conf.lo.forwarding=0"]);
        assert_eq!(run(&dp, Program::FromContainer, &pkt).verdict, TC_ACT_OK);
    });
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn host_to_remote_pod_is_encapsulated_with_the_host_identity() {
    in_underlay_netns(|| {
        let (mut dp, _dir) = setup_with(Some(VXLAN));
        remote_node_entries(&dp);
        let pkt = ipv4_packet([0; 6], [0; 6], ROUTER, REMOTE_POD);
        let r = run(&dp, Program::FromHost, &pkt);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        // VNI = the host identity; no TTL change on the host path.
        assert_vxlan(&r.data, REMOTE_NODE_MAC, REMOTE_NODE, 1, &pkt);
        let t = next_trace(&mut dp);
        assert_eq!(t.obs_point, c::TRACE_TO_OVERLAY);
        assert_eq!((t.source, t.src_label, t.dst_label), (0, 1, REMOTE_ID));
        assert_eq!(t.ifindex, TUNNEL_IFINDEX);
        // Local endpoints still get the redirect into the pod.
        let local = run(
            &dp,
            Program::FromHost,
            &ipv4_packet([0; 6], [0; 6], ROUTER, IP_B),
        );
        assert_eq!(
            (local.verdict, local.mark),
            (TC_ACT_REDIRECT, identity_mark(1))
        );
    });
}

/// A frame from REMOTE_POD to `dst` as it comes out of the tunnel (the
/// remote node's veth MACs).
fn from_remote_pod(dst: Ipv4Addr) -> Vec<u8> {
    ipv4_packet(
        [0x02, 9, 9, 9, 9, 9],
        [0x02, 8, 8, 8, 8, 8],
        REMOTE_POD,
        dst,
    )
}

/// `r` delivered `inner` to endpoint B with source identity `vni`: B's
/// MACs, TTL decremented (checksum fixed), the identity in the mark,
/// traced as from the overlay and counted.
fn assert_delivered_to_b(dp: &mut Datapath, r: &Run, inner: &[u8], vni: u32) {
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_eq!(&r.data[0..6], &MAC_B);
    assert_eq!(&r.data[6..12], &NODE_MAC_B);
    assert_eq!(r.data[14 + 8], 63, "TTL decremented");
    assert_eq!(&r.data[12..], &ttl_decremented(inner)[12..]);
    assert_eq!(r.mark, identity_mark(vni), "identity from the VNI");
    assert_eq!(r.pkt_type, PACKET_HOST, "for the pod, not parsed again");
    let t = next_trace(dp);
    assert_eq!(t.obs_point, c::TRACE_FROM_OVERLAY);
    assert_eq!(
        (t.src_label, t.dst_label, t.dst_id, t.ifindex),
        (vni, 70000, 200, 99)
    );
    assert!(metric(dp, 0, 1) >= 1);
}

/// A VXLAN frame from REMOTE_NODE to `dst`:`port` (outer destination MAC
/// zero: the test device's, so the packet is for this host) around
/// `inner`, VNI `vni`.
fn vxlan_frame(dst: Ipv4Addr, port: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + 8 + 8 + inner.len();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 7, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&REMOTE_NODE.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&((total - 20) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0]);
    f.extend_from_slice(&(vni << 8).to_be_bytes());
    f.extend_from_slice(inner);
    f
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn vxlan_to_a_local_pod_is_decapsulated_on_the_native_device() {
    let (mut dp, _dir) = setup_with(Some(VXLAN));
    remote_node_entries(&dp);
    let inner = from_remote_pod(IP_B);
    let vni = 4242; // deliberately not the ipcache identity of the source
    let r = run(
        &dp,
        Program::FromNetdev,
        &vxlan_frame(LOCAL_NODE, 8472, vni, &inner),
    );
    assert_eq!(r.data.len(), inner.len(), "outer headers removed");
    assert_delivered_to_b(&mut dp, &r, &inner, vni);

    // Left to the stack (and the tunnel device), untouched: another UDP
    // port, another outer destination, an inner destination that is not
    // a local pod (the router IP), a frame for another host.
    let to_router = from_remote_pod(ROUTER);
    let mut other_host = vxlan_frame(LOCAL_NODE, 8472, vni, &inner);
    other_host[0..6].copy_from_slice(&[0x02, 1, 2, 3, 4, 5]);
    for f in [
        vxlan_frame(LOCAL_NODE, 4789, vni, &inner),
        vxlan_frame(REMOTE_NODE, 8472, vni, &inner),
        vxlan_frame(LOCAL_NODE, 8472, vni, &to_router),
        other_host,
    ] {
        let r = run(&dp, Program::FromNetdev, &f);
        assert_eq!((r.verdict, r.mark), (TC_ACT_OK, 0));
        assert_eq!(r.data, f);
    }
    // Native mode: no decapsulation at all.
    let (native, _dir2) = setup();
    let f = vxlan_frame(LOCAL_NODE, 8472, vni, &inner);
    let r = run(&native, Program::FromNetdev, &f);
    assert_eq!((r.verdict, r.data), (TC_ACT_OK, f));
}

#[test]
#[ignore = "privileged: needs root and the BPF objects (clang-19); run by make test"]
fn overlay_ingress_delivers_with_the_identity_from_the_vni() {
    let (mut dp, _dir) = setup_with(Some(VXLAN));
    remote_node_entries(&dp);
    let obj = tunnel_test_obj(&dp);
    let pkt = from_remote_pod(IP_B);
    let vni = 4242; // deliberately not the ipcache identity of the source
    let cb = [vni, u32::from(REMOTE_NODE), 0, 0, 0];
    let r = run_prog(&obj, "test_from_overlay_key", &pkt, Ctx { cb, gso_size: 0 });
    assert_delivered_to_b(&mut dp, &r, &pkt, vni);

    // Not a local endpoint (e.g. the router IP): to the stack, untouched.
    let host = from_remote_pod(ROUTER);
    let cb = [vni, 1, 0, 0, 0];
    let r = run_prog(
        &obj,
        "test_from_overlay_key",
        &host,
        Ctx { cb, gso_size: 0 },
    );
    assert_eq!((r.verdict, r.mark), (TC_ACT_OK, 0));
    assert_eq!(r.data, host);

    // Without tunnel metadata the real program drops (no tunnel key).
    assert_eq!(run(&dp, Program::FromOverlay, &pkt).verdict, TC_ACT_SHOT);
    assert_eq!(metric(&dp, c::DROP_NO_TUNNEL_KEY, 1), 1);
}

#[test]
fn macs_print_like_ip_link() {
    assert_eq!(net::format_mac(&[2, 0, 0xab, 0, 0, 1]), "02:00:ab:00:00:01");
}

#[test]
fn bare_bpffs_root_is_refused() {
    assert!(Datapath::open(&config(Path::new("/sys/fs/bpf"))).is_err());
}
