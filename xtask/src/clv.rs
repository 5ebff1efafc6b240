//! Customer value against its references: `check` (a step of `cargo xtask
//! test`) holds `microfunnel clv` to the published CDNOW fits and to
//! `lifetimes` (tests/clv/check_lifetimes.py); `bench` (`cargo xtask
//! bench-clv [--customers N] [--seed S]`) times both on a million synthetic
//! customers in one run (tools/bench-clv/compare.py). Both use the venv
//! bootstrap makes, whose tools/requirements.txt pins lifetimes.

use crate::util::{cargo, root, run};
use std::process::Command;

fn python() -> Result<std::path::PathBuf, String> {
    crate::bootstrap::python_venv("requirements.txt", &mut Vec::new())
}

pub fn check() -> Result<(), String> {
    run(cargo().args(["build", "--package", "microfunnel-cli"]))?;
    let binary = root().join("target/debug/microfunnel");
    run(Command::new(python()?).arg(root().join("tests/clv/check_lifetimes.py")).arg(binary).current_dir(root()))
}

pub fn bench(rest: &[String]) -> Result<(), String> {
    crate::bootstrap::run()?;
    run(cargo().args(["build", "--release", "--package", "microfunnel-cli"]))?;
    let binary = root().join("target/release/microfunnel");
    run(Command::new(python()?)
        .arg(root().join("tools/bench-clv/compare.py"))
        .arg(binary)
        .args(rest)
        .current_dir(root()))
}
