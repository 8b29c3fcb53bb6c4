//! The only crate that loads BPF or talks netlink.
//!
//! - [`Datapath`]: loads the clang-built object (`bpf/*.c`), pins its maps
//!   under a per-node bpffs directory (reusing existing pins so an agent
//!   restart keeps state), attaches programs to `cilium_host`,
//!   `cilium_net`, the native devices, the tunnel device in tunnel mode
//!   (`cilium_vxlan`/`cilium_geneve`) and each endpoint's `lxc*` veth (TCX
//!   with pinned links, clsact fallback), and gives typed access to the
//!   maps (`cilium_lxc`, `cilium_ipcache_v2`, `cilium_metrics`) and the
//!   event stream (`cilium_events`).
//! - [`net`]: netlink helpers: the `cilium_host`/`cilium_net` pair, the
//!   tunnel device, an endpoint's veth pair plumbed into a pod namespace,
//!   routes, sysctls.
//!
//! Host routing: the endpoint program routes pod traffic the kernel would
//! forward (to other nodes in native routing, or beyond) itself, with a
//! FIB lookup and a redirect to the device the FIB names; packets for a
//! local pod, from the native devices or another pod, go straight into
//! the pod's namespace. The nodes' IP stacks only see traffic for the
//! node itself and what they must answer (ICMP errors, fragmentation).
//!
//! Tunnel routing ([`DatapathConfig::tunnel`]): the endpoint and host
//! programs encapsulate packets to ipcache prefixes that have a tunnel
//! endpoint (VNI = source security identity). VXLAN is encapsulated in BPF
//! and sent straight to the underlay device; `cil_from_netdev` decapsulates
//! VXLAN for local endpoints. The tunnel device (external mode) takes the
//! rest: GENEVE, packets the underlay cannot carry as they are, and
//! traffic for the host, which its `cil_from_overlay` delivers with the
//! source identity from the VNI.
//!
//! Layouts shared with C come from `bpf/include/` (one source of truth;
//! size/offset assertions on the Rust side).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuHashMap, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{self, SchedClassifierLink};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader, include_bytes_aligned};
use ipnet::Ipv4Net;

pub mod abi;
mod events;
pub mod net;

pub use events::{DropNotification, Events, Notification, TraceNotification, drop_reason_name};

use abi::{
    EndpointInfoRaw, EndpointKey, IpcacheKeyData, MetricsKeyRaw, MetricsValueRaw,
    RemoteEndpointInfo, c,
};

/// The compiled `bpf/lxc.c`.
static LXC_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lxc.o"));
/// The compiled `bpf/host.c`.
static HOST_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/host.o"));
/// The compiled `bpf/overlay.c`.
static OVERLAY_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/overlay.o"));

/// Name of the host device holding the router IP.
pub const CILIUM_HOST: &str = "cilium_host";
/// Name of `cilium_host`'s veth peer.
pub const CILIUM_NET: &str = "cilium_net";
/// Name of the VXLAN tunnel device (external mode).
pub const CILIUM_VXLAN: &str = "cilium_vxlan";
/// Name of the GENEVE tunnel device (external mode).
pub const CILIUM_GENEVE: &str = "cilium_geneve";

/// Errors of the datapath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or attaching a program failed (verifier log included).
    #[error("bpf: {0}")]
    Bpf(String),
    /// A map operation failed.
    #[error("map {map}: {message}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What failed.
        message: String,
    },
    /// A netlink operation failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// Anything else (I/O, sysctl, ...).
    #[error("{0}")]
    Other(String),
}

/// Result of datapath operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Node-wide settings fixed when the programs load.
#[derive(Debug, Clone)]
pub struct DatapathConfig {
    /// Per-node bpffs directory (`/sys/fs/bpf/<lab>/<node>`); maps and
    /// links are pinned below it. Never the bare `/sys/fs/bpf`.
    pub bpf_dir: PathBuf,
    /// The node's router IP (on `cilium_host`): the pods' gateway.
    pub router_ip: Ipv4Addr,
    /// The node's own IP (its InternalIP, on a native device). With VXLAN
    /// tunnel routing it is the outer source of the packets the programs
    /// encapsulate and the outer destination they decapsulate.
    pub node_ip: Ipv4Addr,
    /// Native devices (`eth1`).
    pub native_devices: Vec<String>,
    /// This node's cluster ID.
    pub cluster_id: u16,
    /// Tunnel routing (`None` = native routing). The tunnel device must
    /// exist before [`Datapath::load`] ([`net::setup_tunnel_device`]).
    pub tunnel: Option<TunnelConfig>,
}

/// Tunnel routing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Encapsulation.
    pub protocol: TunnelProtocol,
    /// UDP destination port (8472 VXLAN, 6081 GENEVE by convention).
    pub port: u16,
}

/// Encapsulation protocol of tunnel routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelProtocol {
    /// VXLAN (`cilium_vxlan`).
    Vxlan,
    /// GENEVE (`cilium_geneve`).
    Geneve,
}

/// `cilium_lxc` value: a local endpoint, keyed by its IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Host-side veth ifindex.
    pub ifindex: u32,
    /// Endpoint ID.
    pub lxc_id: u16,
    /// Flags (1 = host endpoint).
    pub flags: u32,
    /// The pod's MAC (container side).
    pub mac: [u8; 6],
    /// The host-side veth MAC.
    pub node_mac: [u8; 6],
    /// Security identity.
    pub sec_id: u32,
}

/// `cilium_ipcache_v2` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcacheEntry {
    /// Security identity of the prefix.
    pub sec_identity: u32,
    /// Tunnel endpoint (remote node IP) when the prefix is behind a tunnel.
    pub tunnel_endpoint: Option<Ipv4Addr>,
    /// Encryption key index.
    pub encrypt_key: u8,
}

/// `cilium_metrics` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricsKey {
    /// 0 forwarded, else a drop reason code (unsigned form of the negative code).
    pub reason: u8,
    /// 1 ingress, 2 egress, 3 service.
    pub dir: u8,
}

/// `cilium_metrics` value summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsValue {
    /// Packets.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A program of the datapath (for attaching and for packet tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// `cil_from_container` (lxc veth, tc ingress).
    FromContainer,
    /// `cil_from_host` (`cilium_host`, tc egress).
    FromHost,
    /// `cil_to_host` (`cilium_host`/`cilium_net`, tc ingress).
    ToHost,
    /// `cil_from_netdev` (native devices, tc ingress).
    FromNetdev,
    /// `cil_from_overlay` (tunnel device, tc ingress).
    FromOverlay,
}

impl Program {
    /// The C function / ELF program name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FromContainer => "cil_from_container",
            Self::FromHost => "cil_from_host",
            Self::ToHost => "cil_to_host",
            Self::FromNetdev => "cil_from_netdev",
            Self::FromOverlay => "cil_from_overlay",
        }
    }
}

/// The loaded datapath of one node.
///
/// Dropping it leaves every attached program in place (links are pinned
/// under `<bpf_dir>/links`), so an agent that exits or is killed keeps
/// traffic flowing; the next [`Datapath::load`] replaces the programs.
pub struct Datapath {
    bpf_dir: PathBuf,
    lxc_obj: Ebpf,
    host_obj: Ebpf,
    overlay_obj: Ebpf,
    lxc: Mutex<BpfHashMap<MapData, EndpointKey, EndpointInfoRaw>>,
    ipcache: Mutex<LpmTrie<MapData, IpcacheKeyData, RemoteEndpointInfo>>,
    metrics: PerCpuHashMap<MapData, MetricsKeyRaw, MetricsValueRaw>,
    events: Option<RingBuf<MapData>>,
    /// clsact (netlink) attachments of host devices, only used when TCX
    /// is unavailable.
    nl_links: Vec<SchedClassifierLink>,
    /// Endpoint filters attached by this process, by host-side veth. A
    /// filter outlives the process (a killed agent leaves it in place);
    /// dropping its link here detaches it.
    endpoint_links: std::collections::HashMap<String, SchedClassifierLink>,
}

impl Drop for Datapath {
    /// The endpoint filters stay attached when the agent exits (a restart
    /// must not interrupt traffic): their links are forgotten, not
    /// dropped (dropping one detaches its filter).
    fn drop(&mut self) {
        for (_, link) in std::mem::take(&mut self.endpoint_links) {
            std::mem::forget(link);
        }
    }
}

fn bpf_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Bpf(format!("{what}: {e}"))
}

fn map_err(map: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Map {
        map,
        message: e.to_string(),
    }
}

/// Format an aya program error, keeping the verifier log.
fn prog_err(name: &str, e: aya::programs::ProgramError) -> Error {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => Error::Bpf(format!(
            "loading {name}: {io_error}\nverifier log:\n{verifier_log}"
        )),
        e => bpf_err(name, e),
    }
}

fn endpoint_key(ip: Ipv4Addr) -> EndpointKey {
    let mut key = EndpointKey {
        family: c::ENDPOINT_KEY_IPV4,
        ..Default::default()
    };
    key.ip[..4].copy_from_slice(&ip.octets());
    key
}

fn ipcache_key(prefix: Ipv4Net) -> LpmKey<IpcacheKeyData> {
    let mut data = IpcacheKeyData {
        family: c::ENDPOINT_KEY_IPV4,
        ..Default::default()
    };
    data.ip[..4].copy_from_slice(&prefix.network().octets());
    LpmKey::new(32 + u32::from(prefix.prefix_len()), data)
}

fn mac_to_u64(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    u64::from_ne_bytes(b)
}

fn mac_from_u64(v: u64) -> [u8; 6] {
    let b = v.to_ne_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// A map delete of a key that is not there.
fn is_absent(e: &aya::maps::MapError) -> bool {
    match e {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(2),
        _ => false,
    }
}

fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// The load-time constants (`volatile const` globals) of the programs.
struct Globals {
    /// `ROUTER_IP` (network byte order).
    router_ip: u32,
    /// `TUNNEL_ENABLED`.
    tunnel_enabled: u32,
    /// `TUNNEL_IFINDEX`.
    tunnel_ifindex: u32,
    /// `TUNNEL_BPF_VXLAN`: the programs encapsulate VXLAN themselves.
    tunnel_bpf_vxlan: u32,
    /// `TUNNEL_LOCAL_IP` (network byte order).
    tunnel_local_ip: u32,
    /// `TUNNEL_PORT` (host byte order).
    tunnel_port: u32,
}

impl Globals {
    /// The constants for `cfg` (`tunnel_ifindex` used only in tunnel
    /// mode).
    fn new(cfg: &DatapathConfig, tunnel_ifindex: u32) -> Self {
        let tunnel = cfg.tunnel;
        Self {
            router_ip: u32::from_ne_bytes(cfg.router_ip.octets()),
            tunnel_enabled: u32::from(tunnel.is_some()),
            tunnel_ifindex,
            tunnel_bpf_vxlan: u32::from(
                tunnel.is_some_and(|t| t.protocol == TunnelProtocol::Vxlan),
            ),
            tunnel_local_ip: u32::from_ne_bytes(cfg.node_ip.octets()),
            tunnel_port: tunnel.map_or(0, |t| u32::from(t.port)),
        }
    }

    /// Load an object with its maps pinned (or reused) in `dir` and the
    /// globals patched. Only objects with tunnel code carry the tunnel
    /// globals; `ROUTER_IP` must exist in every object.
    fn load(&self, obj: &[u8], what: &str, dir: &Path) -> Result<Ebpf> {
        EbpfLoader::new()
            .default_map_pin_directory(dir)
            .override_global("ROUTER_IP", &self.router_ip, true)
            .override_global("TUNNEL_ENABLED", &self.tunnel_enabled, false)
            .override_global("TUNNEL_IFINDEX", &self.tunnel_ifindex, false)
            .override_global("TUNNEL_BPF_VXLAN", &self.tunnel_bpf_vxlan, false)
            .override_global("TUNNEL_LOCAL_IP", &self.tunnel_local_ip, false)
            .override_global("TUNNEL_PORT", &self.tunnel_port, false)
            .load(obj)
            .map_err(|e| bpf_err(format!("loading {what}"), e))
    }
}

/// Load the classifier programs `progs` of `obj` into the kernel.
fn load_programs(obj: &mut Ebpf, progs: &[&str]) -> Result<()> {
    for name in progs {
        let prog: &mut SchedClassifier = obj
            .program_mut(name)
            .ok_or_else(|| Error::Bpf(format!("program {name} missing")))?
            .try_into()
            .map_err(|e| bpf_err(name, e))?;
        prog.load().map_err(|e| prog_err(name, e))?;
    }
    Ok(())
}

impl Datapath {
    /// Load the programs, pin or reuse maps, attach to `cilium_host`,
    /// `cilium_net` and the native devices (idempotent: re-running after a
    /// restart replaces the programs without dropping traffic).
    ///
    /// `cilium_host`/`cilium_net` must exist ([`net::setup_host_devices`]).
    /// With `cfg.tunnel` the tunnel device must exist too
    /// ([`net::setup_tunnel_device`]): `cil_from_overlay` is attached to its
    /// ingress and the other protocol's stale overlay link is removed;
    /// without it, overlay links left by an earlier tunnel-mode run are
    /// removed. Endpoints must be re-attached ([`Datapath::attach_endpoint`])
    /// for their programs to pick up a changed routing mode.
    pub fn load(cfg: &DatapathConfig) -> Result<Self> {
        let mut dp = Self::open(cfg)?;
        dp.attach_host(&cfg.native_devices)?;
        let active = cfg.tunnel.map(|t| net::tunnel_device_name(t.protocol));
        for dev in [CILIUM_VXLAN, CILIUM_GENEVE] {
            if Some(dev) == active {
                dp.attach(Program::FromOverlay, dev, TcAttachType::Ingress)?;
            } else {
                dp.unpin_links(dev)?;
            }
        }
        Ok(dp)
    }

    /// Load the programs and pin or reuse the maps without attaching
    /// anything (packet tests, or a later [`Datapath::attach_host`]). With
    /// `cfg.tunnel` the tunnel device's ifindex is looked up by name (it
    /// must exist).
    pub fn open(cfg: &DatapathConfig) -> Result<Self> {
        let tunnel_ifindex = match cfg.tunnel {
            Some(t) => {
                let name = net::tunnel_device_name(t.protocol);
                nix::net::if_::if_nametoindex(name).map_err(|e| {
                    Error::Other(format!(
                        "tunnel device {name}: {e} (create it with net::setup_tunnel_device before loading)"
                    ))
                })?
            }
            None => 0,
        };
        Self::open_with(cfg, tunnel_ifindex)
    }

    /// [`Datapath::open`] with the tunnel device's ifindex given (used
    /// only when `cfg.tunnel` is set).
    fn open_with(cfg: &DatapathConfig, tunnel_ifindex: u32) -> Result<Self> {
        if LXC_OBJ.is_empty() {
            return Err(Error::Other(
                "this build has no BPF programs (clang-19 was missing when it was compiled): run scripts/setup.sh and rebuild".into(),
            ));
        }
        let dir = &cfg.bpf_dir;
        if !dir.is_absolute() || dir.parent().is_none_or(|p| p == Path::new("/sys/fs")) {
            return Err(Error::Other(format!(
                "bpf_dir {} must be a subdirectory of a bpffs mount (not /sys/fs/bpf itself)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir.join("links"))
            .map_err(|e| Error::Other(format!("creating {}: {e}", dir.display())))?;
        let globals = Globals::new(cfg, tunnel_ifindex);
        // lxc first: it creates (or reuses) the pinned maps; the others
        // reuse them.
        let mut lxc_obj = globals.load(LXC_OBJ, "lxc.o", dir)?;
        let mut host_obj = globals.load(HOST_OBJ, "host.o", dir)?;
        let mut overlay_obj = globals.load(OVERLAY_OBJ, "overlay.o", dir)?;
        for (obj, progs) in [
            (&mut lxc_obj, &[Program::FromContainer][..]),
            (
                &mut host_obj,
                &[Program::FromHost, Program::ToHost, Program::FromNetdev][..],
            ),
            (&mut overlay_obj, &[Program::FromOverlay][..]),
        ] {
            load_programs(obj, &progs.iter().map(|p| p.name()).collect::<Vec<_>>())?;
        }
        let take = |obj: &mut Ebpf, name: &'static str| {
            obj.take_map(name).ok_or(Error::Map {
                map: name,
                message: "missing in object".into(),
            })
        };
        let lxc = BpfHashMap::try_from(take(&mut lxc_obj, "cilium_lxc")?)
            .map_err(|e| map_err("cilium_lxc", e))?;
        let ipcache = LpmTrie::try_from(take(&mut lxc_obj, "cilium_ipcache_v2")?)
            .map_err(|e| map_err("cilium_ipcache_v2", e))?;
        let metrics = PerCpuHashMap::try_from(take(&mut lxc_obj, "cilium_metrics")?)
            .map_err(|e| map_err("cilium_metrics", e))?;
        let events = RingBuf::try_from(take(&mut lxc_obj, "cilium_events")?)
            .map_err(|e| map_err("cilium_events", e))?;
        Ok(Self {
            bpf_dir: dir.clone(),
            lxc_obj,
            host_obj,
            overlay_obj,
            lxc: Mutex::new(lxc),
            ipcache: Mutex::new(ipcache),
            metrics,
            events: Some(events),
            nl_links: Vec::new(),
            endpoint_links: std::collections::HashMap::new(),
        })
    }

    /// The per-node bpffs directory (maps pinned by name, links below
    /// `links/`).
    pub fn bpf_dir(&self) -> &Path {
        &self.bpf_dir
    }

    /// Attach the host programs: `cilium_host` egress (`cil_from_host`) and
    /// ingress (`cil_to_host`), `cilium_net` ingress (`cil_to_host`), and
    /// `cil_from_netdev` on each native device's ingress (idempotent).
    pub fn attach_host(&mut self, native_devices: &[String]) -> Result<()> {
        self.attach(Program::FromHost, CILIUM_HOST, TcAttachType::Egress)?;
        self.attach(Program::ToHost, CILIUM_HOST, TcAttachType::Ingress)?;
        self.attach(Program::ToHost, CILIUM_NET, TcAttachType::Ingress)?;
        for dev in native_devices {
            self.attach(Program::FromNetdev, dev, TcAttachType::Ingress)?;
        }
        Ok(())
    }

    /// Attach the endpoint programs to a host-side veth (idempotent).
    ///
    /// Endpoints use a tc clsact filter (cls_bpf, direct action) rather
    /// than a TCX link: creating a TCX link waits for an RCU grace period
    /// (10-30 ms measured here), which dominated pod creation, while a
    /// filter on a fresh clsact qdisc is attached in about 0.1 ms. The
    /// filter needs no pin to survive the agent (it belongs to the
    /// device), and a re-attach (agent restart, routing-mode switch)
    /// replaces the earlier one. Host devices keep TCX.
    pub fn attach_endpoint(&mut self, host_ifname: &str) -> Result<()> {
        let name = Program::FromContainer.name();
        // An existing clsact qdisc (re-attach) is reported as an error by
        // some kernels ("Exclusivity flag on"); only a failed attach below
        // is fatal, with this error for context.
        let clsact = tc::qdisc_add_clsact(host_ifname).err();
        // Replace what an earlier agent attached (its link is not ours to
        // drop), and any TCX link an older version pinned.
        self.endpoint_links.remove(host_ifname);
        let _ = tc::qdisc_detach_program(host_ifname, TcAttachType::Ingress, name);
        self.unpin_links(host_ifname)?;
        let prog: &mut SchedClassifier = self
            .lxc_obj
            .program_mut(name)
            .ok_or_else(|| Error::Bpf(format!("program {name} missing")))?
            .try_into()
            .map_err(|e| bpf_err(name, e))?;
        let id = prog
            .attach_with_options(
                host_ifname,
                TcAttachType::Ingress,
                tc::TcAttachOptions::Netlink(tc::NlOptions {
                    priority: 1,
                    ..Default::default()
                }),
            )
            .map_err(|e| {
                let ctx = clsact
                    .map(|c| format!(" (adding clsact: {c})"))
                    .unwrap_or_default();
                bpf_err(format!("attaching {name} to {host_ifname}{ctx}"), e)
            })?;
        let link = prog.take_link(id).map_err(|e| bpf_err(name, e))?;
        self.endpoint_links.insert(host_ifname.to_string(), link);
        Ok(())
    }

    /// Detach from a host-side veth (idempotent; a vanished device is
    /// fine: deleting a device removes its filters).
    pub fn detach_endpoint(&mut self, host_ifname: &str) -> Result<()> {
        // Dropping our link detaches the filter; a filter left by an
        // earlier agent is removed by name.
        self.endpoint_links.remove(host_ifname);
        let _ = tc::qdisc_detach_program(
            host_ifname,
            TcAttachType::Ingress,
            Program::FromContainer.name(),
        );
        self.unpin_links(host_ifname)
    }

    /// Detach and unpin both links pinned for `ifname` (absent is fine).
    fn unpin_links(&self, ifname: &str) -> Result<()> {
        for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
            let pin = self.link_pin(ifname, hook);
            match PinnedLink::from_pin(&pin) {
                // Unpinning and closing the last fd detaches the link.
                Ok(link) => drop(link.unpin().map_err(|e| bpf_err(pin.display(), e))?),
                Err(_) => match std::fs::remove_file(&pin) {
                    Err(e) if !is_not_found(&e) => return Err(bpf_err(pin.display(), e)),
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn link_pin(&self, ifname: &str, hook: TcAttachType) -> PathBuf {
        let hook = if hook == TcAttachType::Egress {
            "egress"
        } else {
            "ingress"
        };
        // bpffs rejects '.' in names; ':' cannot occur in an ifname.
        let ifname = ifname.replace('.', ":");
        self.bpf_dir.join("links").join(format!("{ifname}_{hook}"))
    }

    /// Attach `p` to `ifname`/`hook` with a TCX link pinned at
    /// `<bpf_dir>/links/<ifname>_<hook>`. A previously pinned link (from an
    /// earlier run) stays attached until the new one is in place, then the
    /// pin is swapped atomically (rename) and the old link released: there
    /// is no moment without a program. Falls back to clsact if TCX fails.
    fn attach(&mut self, p: Program, ifname: &str, hook: TcAttachType) -> Result<()> {
        let pin = self.link_pin(ifname, hook);
        let obj = match p {
            Program::FromContainer => &mut self.lxc_obj,
            Program::FromOverlay => &mut self.overlay_obj,
            Program::FromHost | Program::ToHost | Program::FromNetdev => &mut self.host_obj,
        };
        let prog: &mut SchedClassifier = obj
            .program_mut(p.name())
            .ok_or_else(|| Error::Bpf(format!("program {} missing", p.name())))?
            .try_into()
            .map_err(|e| bpf_err(p.name(), e))?;
        let id = match prog.attach(ifname, hook) {
            Ok(id) => id,
            Err(tcx_err) => {
                // clsact fallback (kernels without TCX).
                match tc::qdisc_add_clsact(ifname) {
                    Ok(()) | Err(tc::TcError::AlreadyAttached) => {}
                    Err(e) => {
                        return Err(bpf_err(
                            format!("attaching {} to {ifname}", p.name()),
                            format!("tcx: {tcx_err}; clsact: {e}"),
                        ));
                    }
                }
                let id = prog
                    .attach_with_options(
                        ifname,
                        hook,
                        tc::TcAttachOptions::Netlink(Default::default()),
                    )
                    .map_err(|e| bpf_err(format!("attaching {} to {ifname}", p.name()), e))?;
                let link = prog.take_link(id).map_err(|e| bpf_err(p.name(), e))?;
                self.nl_links.push(link);
                return Ok(());
            }
        };
        let link = prog.take_link(id).map_err(|e| bpf_err(p.name(), e))?;
        let fd_link = FdLink::try_from(link).map_err(|e| bpf_err(p.name(), e))?;
        let old = PinnedLink::from_pin(&pin).ok();
        let mut tmp = pin.clone().into_os_string();
        tmp.push("_new");
        let tmp = PathBuf::from(tmp);
        match std::fs::remove_file(&tmp) {
            Err(e) if !is_not_found(&e) => return Err(bpf_err(tmp.display(), e)),
            _ => {}
        }
        let pinned = fd_link.pin(&tmp).map_err(|e| bpf_err(tmp.display(), e))?;
        std::fs::rename(&tmp, &pin).map_err(|e| bpf_err(pin.display(), e))?;
        drop(pinned);
        // The old link lost its pin with the rename; closing its fd detaches it.
        drop(old);
        Ok(())
    }

    /// Take the reader of `cilium_events` (once; later calls fail). Must be
    /// called inside a tokio runtime (the ring buffer fd is registered with
    /// its reactor).
    pub fn events(&mut self) -> Result<Events> {
        let ring = self.events.take().ok_or(Error::Map {
            map: "cilium_events",
            message: "the event reader was already taken".into(),
        })?;
        Events::new(ring)
    }

    /// Insert or replace a `cilium_lxc` entry.
    pub fn lxc_upsert(&self, ip: Ipv4Addr, ep: &EndpointInfo) -> Result<()> {
        let value = EndpointInfoRaw {
            ifindex: ep.ifindex,
            lxc_id: ep.lxc_id,
            flags: ep.flags,
            mac: mac_to_u64(ep.mac),
            node_mac: mac_to_u64(ep.node_mac),
            sec_id: ep.sec_id,
            ..Default::default()
        };
        self.lxc
            .lock()
            .expect("cilium_lxc lock")
            .insert(endpoint_key(ip), value, 0)
            .map_err(|e| map_err("cilium_lxc", e))
    }

    /// Delete a `cilium_lxc` entry (absent is fine).
    pub fn lxc_delete(&self, ip: Ipv4Addr) -> Result<()> {
        match self
            .lxc
            .lock()
            .expect("cilium_lxc lock")
            .remove(&endpoint_key(ip))
        {
            Err(e) if !is_absent(&e) => Err(map_err("cilium_lxc", e)),
            _ => Ok(()),
        }
    }

    /// Every `cilium_lxc` entry.
    pub fn lxc_dump(&self) -> Result<Vec<(Ipv4Addr, EndpointInfo)>> {
        let map = self.lxc.lock().expect("cilium_lxc lock");
        let mut out = Vec::new();
        for entry in map.iter() {
            let (k, v) = entry.map_err(|e| map_err("cilium_lxc", e))?;
            if k.family != c::ENDPOINT_KEY_IPV4 {
                continue;
            }
            let ip = Ipv4Addr::new(k.ip[0], k.ip[1], k.ip[2], k.ip[3]);
            out.push((
                ip,
                EndpointInfo {
                    ifindex: v.ifindex,
                    lxc_id: v.lxc_id,
                    flags: v.flags,
                    mac: mac_from_u64(v.mac),
                    node_mac: mac_from_u64(v.node_mac),
                    sec_id: v.sec_id,
                },
            ));
        }
        out.sort_by_key(|(ip, _)| *ip);
        Ok(out)
    }

    /// Insert or replace a `cilium_ipcache_v2` entry.
    pub fn ipcache_upsert(&self, prefix: Ipv4Net, e: &IpcacheEntry) -> Result<()> {
        let mut value = RemoteEndpointInfo {
            sec_identity: e.sec_identity,
            key: e.encrypt_key,
            ..Default::default()
        };
        if let Some(tep) = e.tunnel_endpoint {
            value.tunnel_endpoint[..4].copy_from_slice(&tep.octets());
            value.flags |= c::IPCACHE_F_HAS_TUNNEL_EP;
        }
        self.ipcache
            .lock()
            .expect("cilium_ipcache_v2 lock")
            .insert(&ipcache_key(prefix.trunc()), value, 0)
            .map_err(|e| map_err("cilium_ipcache_v2", e))
    }

    /// Delete a `cilium_ipcache_v2` entry (absent is fine).
    pub fn ipcache_delete(&self, prefix: Ipv4Net) -> Result<()> {
        match self
            .ipcache
            .lock()
            .expect("cilium_ipcache_v2 lock")
            .remove(&ipcache_key(prefix.trunc()))
        {
            Err(e) if !is_absent(&e) => Err(map_err("cilium_ipcache_v2", e)),
            _ => Ok(()),
        }
    }

    /// Every `cilium_ipcache_v2` entry.
    pub fn ipcache_dump(&self) -> Result<Vec<(Ipv4Net, IpcacheEntry)>> {
        let map = self.ipcache.lock().expect("cilium_ipcache_v2 lock");
        let mut out = Vec::new();
        for entry in map.iter() {
            let (k, v) = entry.map_err(|e| map_err("cilium_ipcache_v2", e))?;
            let data = k.data();
            if data.family != c::ENDPOINT_KEY_IPV4 {
                continue;
            }
            let ip = Ipv4Addr::new(data.ip[0], data.ip[1], data.ip[2], data.ip[3]);
            let len = k.prefix_len().saturating_sub(32).min(32) as u8;
            let prefix = Ipv4Net::new(ip, len).map_err(|e| map_err("cilium_ipcache_v2", e))?;
            let t = &v.tunnel_endpoint;
            let has_tep = v.flags & c::IPCACHE_F_HAS_TUNNEL_EP != 0;
            out.push((
                prefix,
                IpcacheEntry {
                    sec_identity: v.sec_identity,
                    tunnel_endpoint: has_tep.then(|| Ipv4Addr::new(t[0], t[1], t[2], t[3])),
                    encrypt_key: v.key,
                },
            ));
        }
        out.sort_by_key(|(p, _)| *p);
        Ok(out)
    }

    /// `cilium_metrics`, summed over CPUs.
    pub fn metrics_dump(&self) -> Result<Vec<(MetricsKey, MetricsValue)>> {
        let mut sums = std::collections::BTreeMap::<MetricsKey, MetricsValue>::new();
        for entry in self.metrics.iter() {
            let (k, per_cpu) = entry.map_err(|e| map_err("cilium_metrics", e))?;
            let sum = sums
                .entry(MetricsKey {
                    reason: k.reason,
                    dir: k.dir,
                })
                .or_default();
            for v in per_cpu.iter() {
                sum.count += v.count;
                sum.bytes += v.bytes;
            }
        }
        Ok(sums.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
