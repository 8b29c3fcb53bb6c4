//! The `CNI_*` environment of a plugin invocation: the input is a list
//! of `NAME=value` lines.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let vars: Vec<(Vec<u8>, Vec<u8>)> = data
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let eq = line.iter().position(|b| *b == b'=')?;
            Some((line[..eq].to_vec(), line[eq + 1..].to_vec()))
        })
        .collect();
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| OsString::from_vec(v.clone()))
    };
    if let Ok(command) = cni::env::command(&lookup) {
        let _ = cni::env::Invocation::from_env(command, &lookup);
    }
});
