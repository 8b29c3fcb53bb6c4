//! Builds the BPF objects from `bpf/*.c` with clang-19 into `OUT_DIR`, and
//! generates `abi_layout.rs` (sizes, offsets and constants of the ABI
//! header) by compiling and running `bpf/tests/layout.c` on the host.
//!
//! Without clang-19 (a plain `cargo test` on a machine that never ran
//! scripts/setup.sh) the objects are left empty, with a warning: the pure
//! tests build and run, and `Datapath::load` says what is missing. The
//! layout program is then compiled with the host's C compiler. Setting
//! `CILIUM_REQUIRE_BPF` (the Makefile does) makes a missing clang an error.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The BPF entry files (below `bpf/`, without `.c`); each becomes
/// `<name>.o` in `OUT_DIR` (`/` replaced by `_`). `tests/tunnel_test` holds
/// test-only wrappers used by the packet tests.
const OBJECTS: &[&str] = &["lxc", "host", "overlay", "tests/tunnel_test"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let bpf = manifest.join("../../bpf");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed={}", bpf.display());
    for dir in ["include", "lib", "tests"] {
        println!("cargo:rerun-if-changed={}", bpf.join(dir).display());
    }
    for entry in std::fs::read_dir(&bpf).expect("read bpf/") {
        println!(
            "cargo:rerun-if-changed={}",
            entry.expect("bpf/ entry").path().display()
        );
    }
    println!("cargo:rerun-if-env-changed=CILIUM_REQUIRE_BPF");
    let clang = has_clang();
    if !clang && env::var_os("CILIUM_REQUIRE_BPF").is_some() {
        panic!(
            "{CLANG} is required to build the datapath: run scripts/setup.sh (apt-get install clang-19 llvm-19 libbpf-dev)"
        );
    }
    for name in OBJECTS {
        if clang {
            compile_bpf(&bpf, &out, name);
        } else {
            std::fs::write(object_path(&out, name), b"").expect("write an empty object");
        }
    }
    if !clang {
        println!(
            "cargo:warning={CLANG} not found: the datapath is built without its BPF programs (the pure tests run; loading fails). Run scripts/setup.sh for a full build."
        );
    }
    generate_layout(&bpf, &out, if clang { CLANG } else { "cc" });
}

/// The BPF compiler.
const CLANG: &str = "clang-19";

fn has_clang() -> bool {
    Command::new(CLANG)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn object_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{}.o", name.replace('/', "_")))
}

fn run(cmd: &mut Command, what: &str, hint: &str) {
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("{what}: cannot run {:?}: {e}. {hint}", cmd.get_program()),
    };
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn compile_bpf(bpf: &Path, out: &Path, name: &str) {
    let src = bpf.join(format!("{name}.c"));
    let obj = object_path(out, name);
    run(
        Command::new(CLANG)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-I")
            .arg(bpf.join("include"))
            .arg("-I")
            .arg(bpf)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj),
        &format!("compiling {}", src.display()),
        "clang-19 is required to build the datapath: run scripts/setup.sh (apt-get install clang-19 llvm-19 libbpf-dev)",
    );
}

fn generate_layout(bpf: &Path, out: &Path, cc: &str) {
    let exe = out.join("abi_layout");
    run(
        Command::new(cc)
            .arg("-I")
            .arg(bpf.join("include"))
            .arg(bpf.join("tests/layout.c"))
            .arg("-o")
            .arg(&exe),
        "compiling bpf/tests/layout.c",
        "a host C compiler (cc) is required: run scripts/setup.sh",
    );
    let output = Command::new(&exe).output().expect("run abi_layout");
    assert!(output.status.success(), "abi_layout failed");
    std::fs::write(out.join("abi_layout.rs"), output.stdout).expect("write abi_layout.rs");
}
