//! One invocation end to end: read the command, the configuration and the
//! environment (in that order, so errors are framed in the configuration's
//! version once it is known), check that the version has the command,
//! forward to the agent and turn its answer or failure into stdout and an
//! exit status. The only I/O here is stdin, the agent socket and the debug
//! log; printing is left to `main`.

use std::io::Read;
use std::time::{Duration, Instant};

use agentclient::{
    Client, ClientError, CniAddRequest, CniAddResponse, CniCheckRequest, CniDelRequest,
    CniGcRequest, CniGcResponse, DEFAULT_TIMEOUT, Health,
};

use cnispec::error::{
    INCOMPATIBLE_VERSION, INVALID_CONFIG, IO_FAILURE, PLUGIN_NOT_AVAILABLE,
    PLUGIN_NOT_AVAILABLE_LIMITED, TRY_AGAIN_LATER,
};
use cnispec::version::{self, CniVersion};
use cnispec::{CniError, Command};

use crate::AGENT_FAILURE;
use crate::config::{self, NetConf};
use crate::env::{self, Invocation, Lookup};
use crate::log::DebugLog;
use crate::result;

/// How long STATUS waits for the agent.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long GC waits for the agent (it may remove many endpoints).
const GC_TIMEOUT: Duration = Duration::from_secs(60);

/// What to print on stdout and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// JSON for stdout (empty when the command prints nothing).
    pub stdout: String,
    /// 0 on success, 1 on a CNI error.
    pub exit_code: u8,
}

/// Runs one CNI operation with the given environment lookup and stdin.
pub fn run(lookup: Lookup<'_>, stdin: &mut dyn Read) -> Outcome {
    let mut reply = CniVersion::LATEST;
    let mut log = DebugLog::default();
    match execute(lookup, stdin, &mut reply, &mut log) {
        Ok(stdout) => Outcome {
            stdout,
            exit_code: 0,
        },
        Err(e) => {
            log.line(format_args!(
                "error: {} (code {}): {}",
                e.msg, e.code, e.details
            ));
            Outcome {
                stdout: e.to_json(reply),
                exit_code: 1,
            }
        }
    }
}

fn execute(
    lookup: Lookup<'_>,
    stdin: &mut dyn Read,
    reply: &mut CniVersion,
    log: &mut DebugLog,
) -> Result<String, CniError> {
    let command = env::command(lookup)?;
    let mut input = Vec::new();
    stdin.read_to_end(&mut input).map_err(|e| {
        CniError::new(
            IO_FAILURE,
            "cannot read the network configuration from stdin",
        )
        .with_details(e.to_string())
    })?;
    if command == Command::Version {
        let requested = config::decode(&input)
            .ok()
            .as_ref()
            .and_then(config::version_hint);
        return Ok(version::version_info(requested));
    }
    let doc = config::decode(&input)?;
    if let Some(v) = config::version_hint(&doc) {
        *reply = v;
    }
    let conf = NetConf::from_doc(&doc)?;
    *log = DebugLog::for_conf(&conf);
    let inv = Invocation::from_env(command, lookup)?;
    log.line(format_args!(
        "{} network={} container={} netns={} ifname={} pod={}/{} agent={}",
        command.as_str(),
        conf.name,
        inv.container_id,
        inv.netns,
        inv.ifname,
        inv.pod.namespace,
        inv.pod.name,
        conf.socket_path.display()
    ));
    check_version(command, conf.cni_version)?;
    let started = Instant::now();
    let out = match command {
        Command::Add => add(&conf, &inv),
        Command::Del => del(&conf, &inv),
        Command::Check => check(&conf, &inv),
        Command::Status => status(&conf),
        Command::Gc => gc(&conf, log),
        // Answered above without a configuration; same answer here.
        Command::Version => Ok(version::version_info(Some(conf.cni_version))),
    };
    log.line(format_args!(
        "{} finished in {:?}",
        command.as_str(),
        started.elapsed()
    ));
    out
}

/// CHECK exists from 0.4.0, STATUS and GC from 1.1.0.
fn check_version(command: Command, version: CniVersion) -> Result<(), CniError> {
    let min = command.since();
    if version < min {
        return Err(CniError::new(
            INCOMPATIBLE_VERSION,
            format!(
                "CNI version {} does not have the {} command",
                version.as_str(),
                command.as_str()
            ),
        )
        .with_details(format!(
            "{} needs cniVersion {} or newer",
            command.as_str(),
            min.as_str()
        )));
    }
    Ok(())
}

/// Maps a client failure to a CNI error: an unreachable agent is
/// transient (11, or 50 for STATUS), agent-reported codes pass through.
fn agent_error(e: ClientError, command: Command) -> CniError {
    let unavailable = if command == Command::Status {
        PLUGIN_NOT_AVAILABLE
    } else {
        TRY_AGAIN_LATER
    };
    match e {
        ClientError::Connect { .. } => {
            CniError::new(unavailable, e.to_string()).with_details("Is the agent running?")
        }
        ClientError::Timeout { .. } | ClientError::Io { .. } => {
            CniError::new(unavailable, e.to_string())
        }
        ClientError::Api(api) => {
            let code = match (command, api.code) {
                (Command::Status, PLUGIN_NOT_AVAILABLE | PLUGIN_NOT_AVAILABLE_LIMITED) => api.code,
                (Command::Status, _) => PLUGIN_NOT_AVAILABLE,
                (_, 0) => AGENT_FAILURE,
                (_, code) => code,
            };
            CniError::new(code, api.message)
        }
        ClientError::Encode(_) | ClientError::Protocol(_) => {
            CniError::new(AGENT_FAILURE, e.to_string())
        }
    }
}

fn client(conf: &NetConf, timeout: Duration) -> Client {
    Client::new(&conf.socket_path).with_timeout(timeout)
}

fn add(conf: &NetConf, inv: &Invocation) -> Result<String, CniError> {
    let req = CniAddRequest {
        container_id: inv.container_id.clone(),
        netns: inv.netns.clone(),
        ifname: inv.ifname.clone(),
        pod_namespace: inv.pod.namespace.clone(),
        pod_name: inv.pod.name.clone(),
        pod_uid: inv.pod.uid.clone(),
        mtu: conf.mtu,
    };
    let resp: CniAddResponse = client(conf, DEFAULT_TIMEOUT)
        .post("/v1/cni/add", &req)
        .map_err(|e| agent_error(e, Command::Add))?;
    let result = result::add_result(
        conf.cni_version,
        &resp,
        &inv.netns,
        conf.prev_result.as_ref(),
    )?;
    serde_json::to_string_pretty(&result).map_err(|e| {
        CniError::new(AGENT_FAILURE, "cannot encode the result").with_details(e.to_string())
    })
}

fn del(conf: &NetConf, inv: &Invocation) -> Result<String, CniError> {
    let req = CniDelRequest {
        container_id: inv.container_id.clone(),
        netns: inv.netns.clone(),
        ifname: inv.ifname.clone(),
    };
    client(conf, DEFAULT_TIMEOUT)
        .post::<_, ()>("/v1/cni/del", &req)
        .map_err(|e| agent_error(e, Command::Del))?;
    Ok(String::new())
}

fn check(conf: &NetConf, inv: &Invocation) -> Result<String, CniError> {
    if conf.prev_result.is_none() {
        return Err(CniError::new(INVALID_CONFIG, "missing \"prevResult\"")
            .with_details("CHECK needs the result of the ADD it verifies"));
    }
    let req = CniCheckRequest {
        container_id: inv.container_id.clone(),
        netns: inv.netns.clone(),
        ifname: inv.ifname.clone(),
    };
    client(conf, DEFAULT_TIMEOUT)
        .post::<_, ()>("/v1/cni/check", &req)
        .map_err(|e| agent_error(e, Command::Check))?;
    Ok(String::new())
}

fn status(conf: &NetConf) -> Result<String, CniError> {
    let health: Health = client(conf, STATUS_TIMEOUT)
        .get("/v1/healthz")
        .map_err(|e| agent_error(e, Command::Status))?;
    if health.status != "ok" {
        return Err(CniError::new(
            PLUGIN_NOT_AVAILABLE,
            format!(
                "the cilium agent on {} is not ready: {}",
                health.node, health.status
            ),
        ));
    }
    Ok(String::new())
}

fn gc(conf: &NetConf, log: &mut DebugLog) -> Result<String, CniError> {
    let Some(valid) = &conf.valid_attachments else {
        return Err(
            CniError::new(INVALID_CONFIG, "missing \"cni.dev/valid-attachments\"").with_details(
                "GC without the list of valid attachments would remove every endpoint",
            ),
        );
    };
    let req = CniGcRequest {
        valid: valid.clone(),
    };
    let resp: CniGcResponse = client(conf, GC_TIMEOUT)
        .post("/v1/cni/gc", &req)
        .map_err(|e| agent_error(e, Command::Gc))?;
    log.line(format_args!("GC removed {:?}", resp.removed));
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use agentclient::ApiError;

    use super::*;

    fn run_with(vars: &[(&str, &str)], stdin: &str) -> Outcome {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let lookup = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        run(&lookup, &mut stdin.as_bytes())
    }

    fn code(out: &Outcome) -> u64 {
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("error JSON");
        v["code"].as_u64().expect("code")
    }

    #[test]
    fn version_needs_no_valid_config() {
        let out = run_with(&[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(out.exit_code, 0);
        assert!(out.stdout.contains("\"supportedVersions\""));
        let out = run_with(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.3.1"}"#);
        assert!(out.stdout.starts_with(r#"{"cniVersion":"0.3.1""#));
    }

    #[test]
    fn errors_are_framed_in_the_config_version() {
        let out = run_with(
            &[("CNI_COMMAND", "ADD")],
            r#"{"cniVersion":"0.4.0","name":"n","type":"cilium-cni"}"#,
        );
        assert_eq!(out.exit_code, 1);
        assert!(
            out.stdout.starts_with(r#"{"cniVersion":"0.4.0","code":4"#),
            "{}",
            out.stdout
        );
    }

    #[test]
    fn commands_missing_from_old_versions_are_code_1() {
        let vars = [
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/ns"),
            ("CNI_IFNAME", "eth0"),
        ];
        let out = run_with(
            &vars,
            r#"{"cniVersion":"0.3.1","name":"n","type":"t","prevResult":{}}"#,
        );
        assert_eq!(code(&out), 1);
        let out = run_with(
            &[("CNI_COMMAND", "STATUS")],
            r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#,
        );
        assert_eq!(code(&out), 1);
        let out = run_with(
            &[("CNI_COMMAND", "GC")],
            r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#,
        );
        assert_eq!(code(&out), 1);
    }

    #[test]
    fn check_needs_prev_result_and_gc_needs_attachments() {
        let vars = [
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/ns"),
            ("CNI_IFNAME", "eth0"),
        ];
        let out = run_with(&vars, r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#);
        assert_eq!(code(&out), 7);
        let out = run_with(
            &[("CNI_COMMAND", "GC")],
            r#"{"cniVersion":"1.1.0","name":"n","type":"t"}"#,
        );
        assert_eq!(code(&out), 7);
    }

    #[test]
    fn client_errors_map_to_cni_codes() {
        let path = PathBuf::from("/x.sock");
        let connect = || ClientError::Connect {
            path: path.clone(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(agent_error(connect(), Command::Add).code, 11);
        assert_eq!(agent_error(connect(), Command::Del).code, 11);
        assert_eq!(agent_error(connect(), Command::Status).code, 50);
        let timeout = ClientError::Timeout {
            path: path.clone(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(agent_error(timeout, Command::Add).code, 11);
        let api = |code| {
            ClientError::Api(ApiError {
                code,
                message: "m".into(),
            })
        };
        assert_eq!(agent_error(api(3), Command::Check), CniError::new(3, "m"));
        assert_eq!(agent_error(api(0), Command::Add).code, AGENT_FAILURE);
        assert_eq!(agent_error(api(51), Command::Status).code, 51);
        assert_eq!(agent_error(api(7), Command::Status).code, 50);
        assert_eq!(
            agent_error(ClientError::Protocol("x".into()), Command::Add).code,
            AGENT_FAILURE
        );
    }
}
