//! The `cilium-cni` binary: runs one CNI operation (see the `cni` library)
//! with the process environment and stdin, prints the outcome on stdout.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = cni::run(&|name| std::env::var_os(name), &mut std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    let written = if outcome.stdout.is_empty() {
        Ok(())
    } else {
        writeln!(stdout, "{}", outcome.stdout).and_then(|()| stdout.flush())
    };
    match written {
        Ok(()) => ExitCode::from(outcome.exit_code),
        Err(_) => ExitCode::FAILURE,
    }
}
