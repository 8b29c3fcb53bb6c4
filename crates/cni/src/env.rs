//! The `CNI_*` environment of one invocation: command, container ID,
//! network namespace, interface name and `CNI_ARGS` (the `K8S_POD_*` keys).
//! Parsing only: values are validated as the specification requires and
//! read through a lookup function, so tests never touch the process
//! environment. Which variables a command requires is decided here too;
//! the commands themselves are [`cnispec::Command`].

use std::ffi::OsString;

use cnispec::error::INVALID_ENV;
use cnispec::{CniError, Command};

/// Whether CNI_CONTAINERID and CNI_IFNAME are required.
fn needs_attachment(command: Command) -> bool {
    matches!(command, Command::Add | Command::Del | Command::Check)
}

/// Whether CNI_NETNS is required (DEL must work without it).
fn needs_netns(command: Command) -> bool {
    matches!(command, Command::Add | Command::Check)
}

/// Kubernetes pod identity from `CNI_ARGS` (empty for other runtimes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodArgs {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`.
    pub uid: String,
}

/// One invocation's environment, validated for its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty when the command does not use it).
    pub container_id: String,
    /// `CNI_NETNS` (may be empty for DEL, STATUS, GC, VERSION).
    pub netns: String,
    /// `CNI_IFNAME` (empty when the command does not use it).
    pub ifname: String,
    /// `CNI_ARGS`.
    pub pod: PodArgs,
}

/// A lookup of one environment variable.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Reads a variable as UTF-8; unset and empty are both `None`.
fn var(lookup: Lookup<'_>, name: &str) -> Result<Option<String>, CniError> {
    match lookup(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| CniError::new(INVALID_ENV, format!("{name} is not valid UTF-8"))),
    }
}

fn required(value: Option<String>, name: &str, command: Command) -> Result<String, CniError> {
    value.ok_or_else(|| {
        CniError::new(INVALID_ENV, format!("missing {name}"))
            .with_details(format!("{name} is required for {}", command.as_str()))
    })
}

/// `CNI_COMMAND` alone (needed before anything else is read).
pub fn command(lookup: Lookup<'_>) -> Result<Command, CniError> {
    let Some(value) = var(lookup, "CNI_COMMAND")? else {
        return Err(CniError::new(INVALID_ENV, "missing CNI_COMMAND"));
    };
    Command::parse(&value).ok_or_else(|| {
        CniError::new(INVALID_ENV, format!("unknown CNI_COMMAND {value:?}"))
            .with_details("expected one of ADD, DEL, CHECK, STATUS, GC, VERSION")
    })
}

impl Invocation {
    /// Reads and validates the environment for `command`.
    pub fn from_env(command: Command, lookup: Lookup<'_>) -> Result<Self, CniError> {
        let mut container_id = var(lookup, "CNI_CONTAINERID")?;
        let mut netns = var(lookup, "CNI_NETNS")?;
        let mut ifname = var(lookup, "CNI_IFNAME")?;
        if needs_attachment(command) {
            container_id = Some(required(container_id, "CNI_CONTAINERID", command)?);
            ifname = Some(required(ifname, "CNI_IFNAME", command)?);
        }
        if needs_netns(command) {
            netns = Some(required(netns, "CNI_NETNS", command)?);
        }
        if let Some(id) = &container_id {
            validate_container_id(id)?;
        }
        if let Some(name) = &ifname {
            validate_ifname(name)?;
        }
        let pod = match var(lookup, "CNI_ARGS")? {
            Some(args) => parse_args(&args)?,
            None => PodArgs::default(),
        };
        Ok(Self {
            command,
            container_id: container_id.unwrap_or_default(),
            netns: netns.unwrap_or_default(),
            ifname: ifname.unwrap_or_default(),
            pod,
        })
    }
}

/// The specification's container ID rule: an alphanumeric first character,
/// then alphanumerics, `_`, `.` or `-`.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(
            CniError::new(INVALID_ENV, "invalid characters in CNI_CONTAINERID")
                .with_details(format!("{id:?}")),
        )
    }
}

/// A Linux interface name: 1-15 bytes, not `.`/`..`, no `/`, `:` or
/// whitespace.
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let reason = if name.len() > 15 {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved name")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(r) => {
            Err(CniError::new(INVALID_ENV, format!("invalid CNI_IFNAME {name:?}")).with_details(r))
        }
    }
}

/// `K=V;K=V` -> the pod keys (others, like `IgnoreUnknown`, are ignored).
fn parse_args(args: &str) -> Result<PodArgs, CniError> {
    let mut pod = PodArgs::default();
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CniError::new(INVALID_ENV, "invalid CNI_ARGS")
                .with_details(format!("{pair:?} is not KEY=VALUE")));
        };
        match key {
            "K8S_POD_NAMESPACE" => pod.namespace = value.to_string(),
            "K8S_POD_NAME" => pod.name = value.to_string(),
            "K8S_POD_UID" => pod.uid = value.to_string(),
            _ => {}
        }
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/p1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1",
        ),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    #[test]
    fn parses_a_kubernetes_add() {
        let env = lookup(ADD);
        assert_eq!(command(&env), Ok(Command::Add));
        let inv = Invocation::from_env(Command::Add, &env).expect("valid");
        assert_eq!(
            inv,
            Invocation {
                command: Command::Add,
                container_id: "abc123".into(),
                netns: "/var/run/netns/p1".into(),
                ifname: "eth0".into(),
                pod: PodArgs {
                    namespace: "default".into(),
                    name: "web-1".into(),
                    uid: "u-1".into(),
                },
            }
        );
    }

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        ADD.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    #[test]
    fn command_errors_are_code_4() {
        assert_eq!(command(&lookup(&[])).unwrap_err().code, INVALID_ENV);
        let e = command(&lookup(&[("CNI_COMMAND", "UPDATE")])).unwrap_err();
        assert_eq!(e.code, INVALID_ENV);
        assert!(e.msg.contains("UPDATE"), "{e:?}");
    }

    #[test]
    fn required_variables_per_command() {
        for (cmd, name) in [
            (Command::Add, "CNI_NETNS"),
            (Command::Check, "CNI_NETNS"),
            (Command::Add, "CNI_CONTAINERID"),
            (Command::Del, "CNI_CONTAINERID"),
            (Command::Del, "CNI_IFNAME"),
        ] {
            let e = Invocation::from_env(cmd, &lookup(&without(name))).unwrap_err();
            assert_eq!(e.code, INVALID_ENV);
            assert_eq!(e.msg, format!("missing {name}"));
        }
        let del = Invocation::from_env(Command::Del, &lookup(&without("CNI_NETNS")))
            .expect("DEL needs no netns");
        assert_eq!(del.netns, "");
        let status = Invocation::from_env(Command::Status, &lookup(&[("CNI_COMMAND", "STATUS")]))
            .expect("STATUS needs nothing");
        assert_eq!(status.container_id, "");
    }

    #[test]
    fn empty_values_count_as_missing() {
        let mut vars = without("CNI_NETNS");
        vars.push(("CNI_NETNS", ""));
        let e = Invocation::from_env(Command::Add, &lookup(&vars)).unwrap_err();
        assert_eq!(e.msg, "missing CNI_NETNS");
    }

    #[test]
    fn container_id_and_ifname_are_validated() {
        for (name, value) in [
            ("CNI_CONTAINERID", "-abc"),
            ("CNI_CONTAINERID", "a/b"),
            ("CNI_IFNAME", "a-very-long-ifname0"),
            ("CNI_IFNAME", "eth:0"),
            ("CNI_IFNAME", ".."),
            ("CNI_IFNAME", "eth 0"),
        ] {
            let mut vars = without(name);
            vars.push((name, value));
            let e = Invocation::from_env(Command::Add, &lookup(&vars)).unwrap_err();
            assert_eq!(e.code, INVALID_ENV, "{name}={value}");
        }
    }

    #[test]
    fn cni_args_parsing() {
        assert_eq!(parse_args(""), Ok(PodArgs::default()));
        assert_eq!(
            parse_args("K8S_POD_NAME=a;;K8S_POD_NAMESPACE=b;"),
            Ok(PodArgs {
                namespace: "b".into(),
                name: "a".into(),
                uid: String::new()
            })
        );
        assert_eq!(parse_args("K8S_POD_NAME").unwrap_err().code, INVALID_ENV);
    }

    #[test]
    fn non_utf8_is_invalid() {
        use std::os::unix::ffi::OsStringExt;
        let env = |k: &str| (k == "CNI_COMMAND").then(|| OsString::from_vec(vec![0xff]));
        assert_eq!(command(&env).unwrap_err().code, INVALID_ENV);
    }
}
