//! `cargo xtask bench-browser`: main-thread cost of the browser module in
//! headless Chromium — loader, module start, capture + score per event, and
//! the number of long tasks (> 50 ms), which must be 0. Runs
//! `crates/browser/bench/bench.mjs` against a fresh `wrangler dev --env test`.
//! Not part of `cargo xtask test`. `MF_BENCH_RUNS` sets the run count (5).

use crate::util::{root, tool_env};
use crate::wrangler::{Dev, free_port, migrate, seed_demo};
use std::process::Command;
use std::time::Duration;

pub fn run(_args: &[String]) -> Result<(), String> {
    crate::build::browser()?;
    crate::build::worker(crate::build::Mode::Test)?;
    let root = root();
    let state = root.join("target/bench-browser/state");
    let _ = std::fs::remove_dir_all(&state);
    migrate(Some("test"), &state)?;
    seed_demo(Some("test"), &state)?;
    let log = root.join("target/bench-browser/wrangler.log");
    let mut dev = Dev::start(Some("test"), free_port()?, &state, Some(&log), &[])?;
    dev.wait_healthy(Duration::from_secs(120))?;
    let mut cmd = Command::new("node");
    cmd.current_dir(&root).arg("crates/browser/bench/bench.mjs").env("MF_BASE_URL", &dev.base_url);
    let result = crate::util::run(tool_env(&mut cmd));
    drop(dev);
    result
}
