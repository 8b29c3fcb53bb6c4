//! Helpers shared by the netns integration tests: `dpt<pid>-` network
//! namespaces and bpffs directories removed on drop, running async code
//! inside a namespace, pings, counters and a bulk TCP transfer.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run a command, true if it succeeded.
pub fn run(cmd: &[&str]) -> bool {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
        .success()
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// Create (re-create) the namespace, loopback up.
    pub fn new(name: String) -> Self {
        let _ = run(&["ip", "netns", "del", &name]);
        assert!(run(&["ip", "netns", "add", &name]), "ip netns add {name}");
        assert!(run(&["ip", "-n", &name, "link", "set", "lo", "up"]));
        Self(name)
    }

    /// Its `/run/netns` path.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }

    /// Two pings from inside it.
    pub fn ping(&self, dst: Ipv4Addr) -> bool {
        let dst = dst.to_string();
        run(&[
            "ip", "netns", "exec", &self.0, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "2", &dst,
        ])
    }

    /// One ping from inside it with extra `ping` options: success and
    /// combined output.
    pub fn ping_with(&self, dst: Ipv4Addr, opts: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "ping", "-c", "1", "-W", "2"])
            .args(opts)
            .arg(dst.to_string())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Read a file as this namespace sees it (`ip netns exec` mounts its
    /// own sysfs).
    fn read(&self, path: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "cat", path])
            .output()
            .unwrap();
        assert!(out.status.success(), "cat {path} in {}", self.0);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A counter of `/sys/class/net/<dev>/statistics` (`rx_packets`, ...).
    pub fn dev_stat(&self, dev: &str, what: &str) -> u64 {
        self.read(&format!("/sys/class/net/{dev}/statistics/{what}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// IPv4 packets the stack forwarded (`Ip: ForwDatagrams` of
    /// `/proc/net/snmp`).
    pub fn forwarded(&self) -> u64 {
        let snmp = self.read("/proc/net/snmp");
        let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
        let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "ForwDatagrams")
            .unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.0]);
    }
}

/// A bpffs directory, removed (with its pins) on drop.
pub struct BpfDir(pub PathBuf);

impl Drop for BpfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `f` on a thread inside `ns` with its own current-thread runtime.
pub fn in_netns<T: Send>(ns: &Netns, f: impl AsyncFnOnce() -> T + Send) -> T {
    let path = ns.path();
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f())
        })
        .join()
        .expect("netns thread")
    })
}

/// Send `bytes` of a byte pattern over one TCP connection from `client`
/// to a listener in `server_ns` on `ip`; returns how many bytes arrived
/// intact (the stream stops counting at the first wrong byte).
pub fn tcp_bulk(client: &Netns, server_ns: &Netns, ip: Ipv4Addr, bytes: usize) -> usize {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    let pattern = |i: usize| (i % 251) as u8;
    let listener = in_netns(server_ns, async || TcpListener::bind((ip, 0)).unwrap());
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let (mut good, mut buf) = (0, vec![0u8; 1 << 16]);
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                return good;
            }
            for &b in &buf[..n] {
                if b != pattern(good) {
                    return good;
                }
                good += 1;
            }
        }
    });
    let mut conn = in_netns(client, async || TcpStream::connect(addr).unwrap());
    let data: Vec<u8> = (0..bytes).map(pattern).collect();
    conn.write_all(&data).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    server.join().unwrap()
}
