//! Reading a key set from its three forms, later ones winning: a
//! directory with one file per key (a mounted ConfigMap), a YAML map
//! file, and `--config KEY=VALUE` overrides. One trimming rule for all of
//! them: keys and values lose their surrounding whitespace.
//! [`ConfigFlags`] are the flags that name the three, for every binary
//! that reads a key set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// Where a process's key set comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    /// A ConfigMap-style directory (`--config-dir`).
    pub dir: Option<&'a Path>,
    /// A YAML map file (`--config-file`).
    pub file: Option<&'a Path>,
    /// `--config KEY=VALUE` arguments.
    pub overrides: &'a [String],
}

impl Sources<'_> {
    /// Read the directory, then the file, then the overrides; a key given
    /// again replaces the earlier value.
    pub fn load(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut keys = match self.dir {
            Some(dir) => read_dir(dir)?,
            None => BTreeMap::new(),
        };
        if let Some(file) = self.file {
            keys.extend(read_yaml(file)?);
        }
        keys.extend(parse_overrides(self.overrides)?);
        Ok(keys)
    }
}

/// The flags naming a process's [`Sources`] (`cilium-agent` and
/// `cilium-operator` flatten them into their own).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigFlags {
    /// Directory with one file per cilium-config key (a mounted ConfigMap).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// A YAML map of cilium-config keys, overriding the directory.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// A cilium-config key, overriding the directory and the file (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigFlags {
    /// Read the key set these flags name ([`Sources::load`]).
    pub fn load(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        Sources {
            dir: self.config_dir.as_deref(),
            file: self.config_file.as_deref(),
            overrides: &self.overrides,
        }
        .load()
    }
}

/// The trimming rule of every input.
fn entry(key: &str, value: &str) -> (String, String) {
    (key.trim().to_string(), value.trim().to_string())
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Read a ConfigMap-style directory: one file per key, the file's content
/// is the value. Hidden entries (`..data`, `..2024_...` of the kubelet's
/// atomic writer) and subdirectories are skipped; symlinks (the keys of a
/// mounted ConfigMap point into `..data`) are followed.
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut keys = BTreeMap::new();
    for dirent in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let dirent = dirent.map_err(|e| read_error(dir, e))?;
        let name = dirent.file_name().to_string_lossy().into_owned();
        let path = dirent.path();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let value = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
        let (k, v) = entry(&name, &value);
        keys.insert(k, v);
    }
    Ok(keys)
}

/// Read a YAML map of keys to scalar values (`debug: true`, `mtu: 1500`,
/// `tunnel-protocol: vxlan`); a value left empty (`key:`) is the empty
/// string, an empty file an empty key set.
pub fn read_yaml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_error(path, e))?;
    let options = serde_saphyr::options! { with_snippet: false };
    let map: Option<BTreeMap<String, Option<String>>> =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| ConfigError::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(map
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| entry(k, v.as_deref().unwrap_or("")))
        .collect())
}

/// Parse `KEY=VALUE` arguments (the value may contain `=`); a later
/// argument for the same key wins.
pub fn parse_overrides(items: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut keys = BTreeMap::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
        let (k, v) = entry(k, v);
        keys.insert(k, v);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::key_set;

    /// A directory laid out like a kubelet-mounted ConfigMap: the data in
    /// a timestamped directory, `..data` pointing at it, one symlink per key.
    fn configmap_dir(dir: &Path, pairs: &[(&str, &str)]) {
        let data = dir.join("..2024_01_01_00_00_00.000000001");
        std::fs::create_dir(&data).unwrap();
        for (k, v) in pairs {
            std::fs::write(data.join(k), v).unwrap();
            std::os::unix::fs::symlink(format!("..data/{k}"), dir.join(k)).unwrap();
        }
        std::os::unix::fs::symlink(data.file_name().unwrap(), dir.join("..data")).unwrap();
    }

    #[test]
    fn a_mounted_configmap_directory() {
        let dir = tempfile::tempdir().unwrap();
        configmap_dir(
            dir.path(),
            &[("ipam", "kubernetes\n"), ("debug", "  true  ")],
        );
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.path().join("subdir")).unwrap();
        assert_eq!(
            read_dir(dir.path()).unwrap(),
            key_set(&[("debug", "true"), ("ipam", "kubernetes")])
        );
        let missing = dir.path().join("missing");
        assert!(
            read_dir(&missing)
                .unwrap_err()
                .to_string()
                .starts_with(&format!("cannot read {}: ", missing.display()))
        );
    }

    #[test]
    fn a_yaml_map_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cilium-config.yaml");
        std::fs::write(
            &file,
            "debug: true\nmtu: 1500\nbpf-map-dynamic-size-ratio: 0.0025\n\
             tunnel-protocol: ' vxlan '\nipv4-native-routing-cidr:\n\"enable-hubble\": \"false\"\n",
        )
        .unwrap();
        assert_eq!(
            read_yaml(&file).unwrap(),
            key_set(&[
                ("bpf-map-dynamic-size-ratio", "0.0025"),
                ("debug", "true"),
                ("enable-hubble", "false"),
                ("ipv4-native-routing-cidr", ""),
                ("mtu", "1500"),
                ("tunnel-protocol", "vxlan"),
            ])
        );
        std::fs::write(&file, "").unwrap();
        assert_eq!(read_yaml(&file).unwrap(), BTreeMap::new());
        for bad in [
            "- ipam\n- debug\n",
            "ipam:\n  mode: kubernetes\n",
            "ipam: [\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            let e = read_yaml(&file).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "{}: expected a YAML map of cilium-config keys to values: ",
                    file.display()
                )),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn overrides() {
        let o = |items: &[&str]| {
            parse_overrides(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            o(&[
                "ipam=cluster-pool",
                " debug = true ",
                "a=b=c",
                "ipam=kubernetes",
                "x="
            ])
            .unwrap(),
            key_set(&[
                ("a", "b=c"),
                ("debug", "true"),
                ("ipam", "kubernetes"),
                ("x", "")
            ])
        );
        for bad in ["oops", "=value", " =value"] {
            assert_eq!(
                o(&[bad]).unwrap_err().to_string(),
                format!("`--config {bad}`: expected KEY=VALUE")
            );
        }
    }

    #[test]
    fn later_sources_win_and_every_form_trims_alike() {
        let dir = tempfile::tempdir().unwrap();
        let cm = dir.path().join("cm");
        std::fs::create_dir(&cm).unwrap();
        configmap_dir(
            &cm,
            &[
                ("ipam", " kubernetes\n"),
                ("debug", "true\n"),
                ("mtu", "1500"),
            ],
        );
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "debug: ' false '\nmtu: 9000\n").unwrap();
        let overrides = vec!["mtu = 1400 ".to_string()];
        let keys = Sources {
            dir: Some(&cm),
            file: Some(&file),
            overrides: &overrides,
        }
        .load()
        .unwrap();
        assert_eq!(
            keys,
            key_set(&[("debug", "false"), ("ipam", "kubernetes"), ("mtu", "1400")])
        );
        assert_eq!(Sources::default().load().unwrap(), BTreeMap::new());
    }

    #[test]
    fn flags_name_the_sources() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: ConfigFlags,
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "debug: true\nmtu: 9000\n").unwrap();
        let cli = Cli::parse_from([
            "cli".as_ref(),
            "--config-file".as_ref(),
            file.as_os_str(),
            "--config".as_ref(),
            "mtu=1400".as_ref(),
        ]);
        assert_eq!(
            cli.config.load().unwrap(),
            key_set(&[("debug", "true"), ("mtu", "1400")])
        );
        let cli = Cli::parse_from(["cli"]);
        assert_eq!(cli.config.load().unwrap(), BTreeMap::new());
    }
}
