//! Helpers shared by the netns integration tests: `dpt<pid>-` network
//! namespaces and bpffs directories removed on drop, and running async
//! code inside a namespace.

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
