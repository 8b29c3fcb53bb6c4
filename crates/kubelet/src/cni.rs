//! CNI client: finds a node's network configuration and executes its
//! plugins the way a container runtime does (CNI spec 1.x: `CNI_*`
//! environment, the plugin's configuration on stdin with `name`,
//! `cniVersion`, `prevResult` and `runtimeConfig` injected, results and
//! error objects on stdout, in [`cnispec`]'s types).
//!
//! Request building and result/error decoding are pure functions; only
//! [`CniClient`] executes processes. Plugins run in the caller's network
//! namespace (the node's), as with containerd. This module never creates
//! namespaces or links itself, and writes only the bridge configuration
//! and the attachment caches it is asked to.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cnispec::{AddResult, CniError, CniVersion, Command};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use toolkit::write_atomic;

use crate::Error;
use crate::error::Context;

/// Interface name inside the sandbox, as Kubernetes runtimes use.
pub const POD_IFNAME: &str = "eth0";

/// How long one plugin invocation may take before it is killed.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of CNI operations.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No configuration file in the directory.
    #[error("network plugin not ready: no CNI configuration in {0}")]
    NoConfig(PathBuf),
    /// A configuration file does not parse or lacks required keys.
    #[error("invalid CNI configuration {path}: {reason}")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The plugin binary is in none of the plugin directories.
    #[error("failed to find plugin {plugin:?} in path {dirs:?}")]
    PluginNotFound {
        /// Plugin type.
        plugin: String,
        /// Directories searched.
        dirs: Vec<PathBuf>,
    },
    /// The plugin could not be executed or timed out.
    #[error("plugin type={plugin:?} failed ({}): {reason}", lower(*.command))]
    Exec {
        /// Plugin type.
        plugin: String,
        /// CNI command.
        command: Command,
        /// What went wrong.
        reason: String,
    },
    /// The plugin returned an error object.
    #[error("plugin type={plugin:?} failed ({}): {error}", lower(*.command))]
    Plugin {
        /// Plugin type.
        plugin: String,
        /// CNI command.
        command: Command,
        /// The decoded error.
        error: CniError,
    },
    /// The plugin succeeded but its output is not a result.
    #[error("plugin type={plugin:?} returned an invalid result: {reason}")]
    InvalidResult {
        /// Plugin type.
        plugin: String,
        /// Decoder message.
        reason: String,
    },
}

/// A command as containerd prints it in errors (`failed (add)`).
fn lower(command: Command) -> String {
    command.as_str().to_ascii_lowercase()
}

/// Decode a failed plugin's output: the error object on stdout, else the
/// raw stdout/stderr text with the exit status.
pub fn parse_error(stdout: &[u8], stderr: &[u8], status: &str) -> CniError {
    if let Ok(err) = serde_json::from_slice::<CniError>(stdout)
        && !err.msg.is_empty()
    {
        return err;
    }
    let text = [stdout, stderr]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    CniError {
        code: 999,
        msg: if text.is_empty() {
            format!("plugin exited with {status}")
        } else {
            text
        },
        details: String::new(),
    }
}

/// A network configuration list (a `.conflist`, or a single-plugin
/// `.conf` lifted into one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfigList {
    /// `cniVersion` of the list, injected into every plugin's config.
    pub cni_version: String,
    /// Network name, injected into every plugin's config.
    pub name: String,
    /// Skip CHECK for this network.
    #[serde(default)]
    pub disable_check: bool,
    /// The plugin configurations, in order.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkConfigList {
    /// Parse a configuration file's bytes; `conflist` selects the list
    /// format, otherwise a single plugin configuration is expected.
    pub fn parse(bytes: &[u8], conflist: bool) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let obj = value.as_object().ok_or("not a JSON object")?;
        let list = if conflist {
            serde_json::from_value::<Self>(value.clone()).map_err(|e| e.to_string())?
        } else {
            let get = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
            Self {
                cni_version: get("cniVersion").ok_or("missing cniVersion")?,
                name: get("name").ok_or("missing name")?,
                disable_check: false,
                plugins: vec![obj.clone()],
            }
        };
        if list.name.is_empty() {
            return Err("missing name".into());
        }
        if list.plugins.is_empty() {
            return Err("no plugins in list".into());
        }
        for (i, p) in list.plugins.iter().enumerate() {
            if p.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return Err(format!("plugins[{i}]: missing type"));
            }
        }
        Ok(list)
    }

    /// Load the configuration a container runtime would use from `dir`:
    /// the lexicographically first `*.conflist`, `*.conf` or `*.json` file.
    pub fn load_dir(dir: &Path) -> Result<(PathBuf, Self), ClientError> {
        let path =
            first_config_file(dir).ok_or_else(|| ClientError::NoConfig(dir.to_path_buf()))?;
        let bytes = std::fs::read(&path).map_err(|e| ClientError::InvalidConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let conflist = path.extension() == Some(OsStr::new("conflist"));
        let list = Self::parse(&bytes, conflist).map_err(|reason| ClientError::InvalidConfig {
            path: path.clone(),
            reason,
        })?;
        Ok((path, list))
    }

    /// Plugin type of entry `i`.
    fn plugin_type(&self, i: usize) -> &str {
        self.plugins[i]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Whether CHECK applies (spec >= 0.4.0 and not disabled).
    pub fn supports_check(&self) -> bool {
        !self.disable_check && cnispec::version::at_least(&self.cni_version, Command::Check.since())
    }
}

/// The first configuration file of `dir` in lexicographic order.
pub fn first_config_file(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(OsStr::to_str),
                    Some("conflist" | "conf" | "json")
                )
        })
        .collect();
    files.sort();
    files.into_iter().next()
}

/// One port mapping offered to plugins with the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the node.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Host address to bind, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The runtime side of an attachment: who is attached, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConf {
    /// Sandbox (container) ID: `CNI_CONTAINERID`.
    pub container_id: String,
    /// Path of the sandbox's network namespace: `CNI_NETNS`.
    pub netns: PathBuf,
    /// Interface name in the sandbox: `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` key/value pairs, in order.
    pub args: Vec<(String, String)>,
    /// Host port mappings (only for plugins declaring the capability).
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

impl RuntimeConf {
    /// The attachment of a Kubernetes pod sandbox, with the `CNI_ARGS`
    /// containerd passes.
    pub fn for_pod(
        container_id: &str,
        netns: &Path,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Self {
        let args = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", namespace),
            ("K8S_POD_NAME", name),
            ("K8S_POD_INFRA_CONTAINER_ID", container_id),
            ("K8S_POD_UID", uid),
        ];
        Self {
            container_id: container_id.to_string(),
            netns: netns.to_path_buf(),
            ifname: POD_IFNAME.to_string(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            port_mappings: Vec::new(),
        }
    }

    /// `CNI_ARGS` as a string (`K=V;K=V`).
    pub fn cni_args(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// One plugin invocation: environment and stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Plugin type (the binary's name).
    pub plugin: String,
    /// The command.
    pub command: Command,
    /// `CNI_*` variables (added to the inherited environment).
    pub env: Vec<(String, String)>,
    /// The configuration on stdin.
    pub stdin: Value,
}

/// Build the invocation of plugin `index` of `list`: the plugin's own
/// configuration with `name` and `cniVersion` of the list, `prevResult`
/// when given, and `runtimeConfig` for the capabilities it declares.
pub fn build_request(
    command: Command,
    list: &NetworkConfigList,
    index: usize,
    rt: &RuntimeConf,
    prev_result: Option<&Value>,
    cni_path: &[PathBuf],
) -> Request {
    let mut conf = list.plugins[index].clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    match prev_result {
        Some(prev) => {
            conf.insert("prevResult".into(), prev.clone());
        }
        None => {
            conf.remove("prevResult");
        }
    }
    let wants_ports = conf
        .get("capabilities")
        .and_then(|c| c.get("portMappings"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if wants_ports && !rt.port_mappings.is_empty() {
        let mut runtime_config = conf
            .get("runtimeConfig")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        runtime_config.insert("portMappings".into(), json!(rt.port_mappings));
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    let path = std::env::join_paths(cni_path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let env = vec![
        ("CNI_COMMAND".to_string(), command.as_str().to_string()),
        ("CNI_CONTAINERID".to_string(), rt.container_id.clone()),
        ("CNI_NETNS".to_string(), rt.netns.display().to_string()),
        ("CNI_IFNAME".to_string(), rt.ifname.clone()),
        ("CNI_ARGS".to_string(), rt.cni_args()),
        ("CNI_PATH".to_string(), path),
    ];
    Request {
        plugin: list.plugin_type(index).to_string(),
        command,
        env,
        stdin: Value::Object(conf),
    }
}

/// Decode a successful ADD's stdout: a result of a version we speak. The
/// JSON is returned as it came, to be handed on unchanged.
pub fn parse_result(plugin: &str, stdout: &[u8]) -> Result<Value, ClientError> {
    let invalid = |reason: String| ClientError::InvalidResult {
        plugin: plugin.to_string(),
        reason,
    };
    let value: Value = serde_json::from_slice(stdout).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("not a JSON object".into()));
    }
    AddResult::deserialize(&value).map_err(|e| invalid(e.to_string()))?;
    Ok(value)
}

/// Executes plugins found in a list of directories.
#[derive(Debug, Clone)]
pub struct CniClient {
    bin_dirs: Vec<PathBuf>,
}

impl CniClient {
    /// A client searching plugins in `bin_dirs` (also passed as `CNI_PATH`).
    pub fn new(bin_dirs: Vec<PathBuf>) -> Self {
        Self { bin_dirs }
    }

    fn find_plugin(&self, plugin: &str) -> Result<PathBuf, ClientError> {
        if !plugin.contains('/') {
            for dir in &self.bin_dirs {
                let p = dir.join(plugin);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        Err(ClientError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: self.bin_dirs.clone(),
        })
    }

    /// Run one request; returns the plugin's stdout on success.
    async fn exec(&self, req: &Request) -> Result<Vec<u8>, ClientError> {
        let bin = self.find_plugin(&req.plugin)?;
        let exec_err = |reason: String| ClientError::Exec {
            plugin: req.plugin.clone(),
            command: req.command,
            reason,
        };
        let stdin = serde_json::to_vec(&req.stdin).map_err(|e| exec_err(e.to_string()))?;
        let mut child = tokio::process::Command::new(&bin)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| exec_err(format!("cannot execute {}: {e}", bin.display())))?;
        if let Some(mut pipe) = child.stdin.take() {
            // A plugin may exit without reading stdin; a broken pipe is
            // then not the error to report.
            let _ = pipe.write_all(&stdin).await;
        }
        let out = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| exec_err(format!("timed out after {PLUGIN_TIMEOUT:?}")))?
            .map_err(|e| exec_err(e.to_string()))?;
        tracing::debug!(
            plugin = %req.plugin,
            command = req.command.as_str(),
            status = %out.status,
            "cni plugin ran"
        );
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(ClientError::Plugin {
                plugin: req.plugin.clone(),
                command: req.command,
                error: parse_error(&out.stdout, &out.stderr, &out.status.to_string()),
            })
        }
    }

    /// ADD through every plugin in order, chaining each result into the
    /// next plugin's `prevResult`; returns the final result.
    pub async fn add(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Value, ClientError> {
        let mut prev: Option<Value> = None;
        for i in 0..list.plugins.len() {
            let req = build_request(Command::Add, list, i, rt, prev.as_ref(), &self.bin_dirs);
            let out = self.exec(&req).await?;
            prev = Some(parse_result(&req.plugin, &out)?);
        }
        prev.ok_or_else(|| ClientError::InvalidResult {
            plugin: String::new(),
            reason: "no plugins".into(),
        })
    }

    /// CHECK through every plugin in order with the cached result as
    /// `prevResult` (a no-op for networks that do not support CHECK).
    pub async fn check(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
        cached: &Value,
    ) -> Result<(), ClientError> {
        if !list.supports_check() {
            return Ok(());
        }
        for i in 0..list.plugins.len() {
            let req = build_request(Command::Check, list, i, rt, Some(cached), &self.bin_dirs);
            self.exec(&req).await?;
        }
        Ok(())
    }

    /// DEL through every plugin in reverse order with the cached result
    /// (if any) as `prevResult`. Plugins treat DEL as idempotent.
    pub async fn del(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
        cached: Option<&Value>,
    ) -> Result<(), ClientError> {
        // A cached result goes along with DEL from 0.4.0.
        let prev =
            cached.filter(|_| cnispec::version::at_least(&list.cni_version, CniVersion::V0_4_0));
        for i in (0..list.plugins.len()).rev() {
            let req = build_request(Command::Del, list, i, rt, prev, &self.bin_dirs);
            self.exec(&req).await?;
        }
        Ok(())
    }
}

/// Everything needed to CHECK and DEL an attachment later, as a runtime
/// caches it after ADD (the configuration as used, not as it is now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    /// The configuration file the list came from.
    pub config_path: PathBuf,
    /// The network configuration list.
    pub config: NetworkConfigList,
    /// Who and where.
    pub runtime: RuntimeConf,
    /// The final ADD result; `None` while ADD has not succeeded.
    pub result: Option<Value>,
}

impl CachedAttachment {
    /// Read from `path`; `None` if absent.
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .with_context(|| format!("cannot decode {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Write atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self)
            .with_context(|| format!("cannot encode {}", path.display()))?;
        write_atomic(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Name of the network in the configuration the lab writes.
pub const BRIDGE_NETWORK_NAME: &str = "lab-bridge";

/// File name of the configuration the lab writes in bridge mode.
pub const BRIDGE_CONFLIST: &str = "10-bridge.conflist";

/// The bridge network of a node: Debian's `bridge` plugin on `cni0` as
/// gateway with `host-local` IPAM over the node's podCIDR, IPAM state in
/// `ipam_data_dir` (per node, never shared).
pub fn bridge_conflist(pod_cidr: &IpNet, ipam_data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": BRIDGE_NETWORK_NAME,
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": pod_cidr.trunc().to_string() }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_data_dir.display().to_string(),
            },
        }],
    })
}

/// Write the bridge configuration into `conf_dir` unless it is already
/// there with the same content; returns whether the file changed.
pub fn write_bridge_conflist(
    conf_dir: &Path,
    pod_cidr: &IpNet,
    ipam_data_dir: &Path,
) -> Result<bool, Error> {
    let path = conf_dir.join(BRIDGE_CONFLIST);
    let mut bytes = serde_json::to_vec_pretty(&bridge_conflist(pod_cidr, ipam_data_dir))
        .with_context(|| format!("cannot encode {}", path.display()))?;
    bytes.push(b'\n');
    if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
        return Ok(false);
    }
    std::fs::create_dir_all(conf_dir)
        .with_context(|| format!("cannot create {}", conf_dir.display()))?;
    write_atomic(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> NetworkConfigList {
        NetworkConfigList::parse(
            br#"{"cniVersion":"1.0.0","name":"net1","plugins":[
                {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}},
                {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            true,
        )
        .expect("valid conflist")
    }

    fn rt() -> RuntimeConf {
        RuntimeConf::for_pod("abc123", Path::new("/run/netns/x"), "default", "web", "u-1")
    }

    #[test]
    fn request_env_matches_containerd() {
        let req = build_request(
            Command::Add,
            &list(),
            0,
            &rt(),
            None,
            &[PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        );
        assert_eq!(req.plugin, "bridge");
        let env: std::collections::HashMap<_, _> = req.env.iter().cloned().collect();
        assert_eq!(env["CNI_COMMAND"], "ADD");
        assert_eq!(env["CNI_CONTAINERID"], "abc123");
        assert_eq!(env["CNI_NETNS"], "/run/netns/x");
        assert_eq!(env["CNI_IFNAME"], "eth0");
        assert_eq!(
            env["CNI_ARGS"],
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1"
        );
        assert_eq!(env["CNI_PATH"], "/opt/cni/bin:/usr/lib/cni");
        assert_eq!(req.stdin["name"], "net1");
        assert_eq!(req.stdin["cniVersion"], "1.0.0");
        assert_eq!(req.stdin["bridge"], "cni0");
        assert!(req.stdin.get("prevResult").is_none());
    }

    #[test]
    fn request_chains_prev_result_and_runtime_config() {
        let prev = json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]});
        let mut rt = rt();
        rt.port_mappings.push(PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        });
        let req = build_request(Command::Add, &list(), 1, &rt, Some(&prev), &[]);
        assert_eq!(req.plugin, "portmap");
        assert_eq!(req.stdin["prevResult"], prev);
        assert_eq!(
            req.stdin["runtimeConfig"]["portMappings"],
            json!([{"hostPort":8080,"containerPort":80,"protocol":"tcp"}])
        );
        // No capability, no runtimeConfig.
        let req = build_request(Command::Del, &list(), 0, &rt, Some(&prev), &[]);
        assert!(req.stdin.get("runtimeConfig").is_none());
        assert_eq!(req.env[0].1, "DEL");
    }

    #[test]
    fn single_conf_is_lifted_into_a_list() {
        let l =
            NetworkConfigList::parse(br#"{"cniVersion":"0.4.0","name":"n","type":"ptp"}"#, false)
                .expect("valid conf");
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugin_type(0), "ptp");
        assert!(l.supports_check());
        let old =
            NetworkConfigList::parse(br#"{"cniVersion":"0.3.1","name":"n","type":"ptp"}"#, false)
                .expect("valid conf");
        assert!(!old.supports_check());
        assert!(
            NetworkConfigList::parse(br#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#, true)
                .is_err()
        );
        assert!(NetworkConfigList::parse(b"not json", true).is_err());
    }

    #[test]
    fn result_and_error_parsing() {
        let out = br#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"aa"},
            {"name":"vethX","mac":"bb"},{"name":"eth0","mac":"cc","sandbox":"/run/netns/x"}],
            "ips":[{"interface":2,"address":"10.244.1.5/24","gateway":"10.244.1.1"},
                   {"interface":2,"address":"fd00::5/64"}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
        let v = parse_result("bridge", out).expect("result");
        assert_eq!(v["ips"][1]["address"], "fd00::5/64", "handed on as it came");
        assert!(matches!(
            parse_result("bridge", br#"{"cniVersion":"0.2.0","ip4":{}}"#),
            Err(ClientError::InvalidResult { .. })
        ));
        assert!(matches!(
            parse_result("bridge", b"garbage"),
            Err(ClientError::InvalidResult { .. })
        ));

        let e = parse_error(
            br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#,
            b"",
            "exit status: 1",
        );
        assert_eq!(e.code, 11);
        assert_eq!(e.to_string(), "failed to allocate; range full");
        let e = parse_error(b"", b"panic: boom\n", "exit status: 2");
        assert_eq!(e.msg, "panic: boom");
        let e = parse_error(b"", b"", "exit status: 2");
        assert_eq!(e.msg, "plugin exited with exit status: 2");
        let full = ClientError::Plugin {
            plugin: "bridge".into(),
            command: Command::Add,
            error: CniError::new(7, "bad"),
        };
        assert_eq!(full.to_string(), "plugin type=\"bridge\" failed (add): bad");
    }

    #[test]
    fn conflist_writing_and_selection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cidr: IpNet = "10.244.1.0/24".parse().expect("cidr");
        let data = dir.path().join("ipam");
        assert!(matches!(
            NetworkConfigList::load_dir(dir.path()),
            Err(ClientError::NoConfig(_))
        ));
        assert!(write_bridge_conflist(dir.path(), &cidr, &data).expect("write"));
        assert!(!write_bridge_conflist(dir.path(), &cidr, &data).expect("rewrite"));
        let (path, l) = NetworkConfigList::load_dir(dir.path()).expect("load");
        assert_eq!(
            path.file_name().and_then(OsStr::to_str),
            Some(BRIDGE_CONFLIST)
        );
        assert_eq!(l.cni_version, "1.0.0");
        let p = &l.plugins[0];
        assert_eq!(p["type"], "bridge");
        assert_eq!(p["bridge"], "cni0");
        assert_eq!(p["isGateway"], true);
        assert_eq!(p["hairpinMode"], true);
        assert_eq!(p["ipam"]["type"], "host-local");
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(p["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(p["ipam"]["dataDir"], data.display().to_string());
        // A lexicographically earlier file wins, like containerd.
        std::fs::write(
            dir.path().join("05-other.conf"),
            br#"{"cniVersion":"1.0.0","name":"o","type":"ptp"}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("00-ignored.txt"), b"x").expect("write");
        let (_, l) = NetworkConfigList::load_dir(dir.path()).expect("load");
        assert_eq!(l.name, "o");
    }

    #[test]
    fn cached_attachment_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cni.json");
        assert!(CachedAttachment::load(&path).expect("load").is_none());
        let c = CachedAttachment {
            config_path: "/etc/cni/net.d/10-bridge.conflist".into(),
            config: list(),
            runtime: rt(),
            result: Some(json!({"cniVersion":"1.0.0"})),
        };
        c.save(&path).expect("save");
        assert_eq!(CachedAttachment::load(&path).expect("load"), Some(c));
    }
}
