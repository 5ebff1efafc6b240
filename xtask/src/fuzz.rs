//! `cargo xtask fuzz [--minutes N] [TARGET…]`: cargo-fuzz (libFuzzer, on the
//! pinned nightly) over every decoder of untrusted input, `fuzz/fuzz_targets/`.
//! Not a step of `cargo xtask test`: it runs for as long as it is given.
//!
//! Each target starts from its committed seeds (`fuzz/corpus/<target>`, read
//! only) and grows a working corpus in `fuzz/corpus-run/<target>`; a crash
//! leaves its input in `fuzz/artifacts/<target>/` and fails the run — turn
//! it into a regression test. Prints executions per target and the total.

use crate::bootstrap::BROWSER_TOOLCHAIN;
use crate::util::{cargo_bin_dir, root, run};
use std::process::Command;

const TARGETS: [&str; 7] =
    ["event_parse", "consent_signals", "rules_compact", "rules_files", "cli_readers", "site_config", "visitor_message"];

pub fn run_cmd(args: &[String]) -> Result<(), String> {
    let mut minutes = 1.0_f64;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--minutes" => {
                let v = it.next().ok_or("--minutes: needs a number")?;
                minutes = v
                    .parse()
                    .ok()
                    .filter(|m: &f64| m.is_finite() && *m > 0.0)
                    .ok_or_else(|| format!("--minutes: `{v}` is not a positive number"))?;
            }
            t if TARGETS.contains(&t) => only.push(t),
            other => return Err(format!("fuzz: unknown argument `{other}` (targets: {})", TARGETS.join(", "))),
        }
    }
    let targets: Vec<&str> = if only.is_empty() { TARGETS.to_vec() } else { only };
    let fuzz_bin = cargo_bin_dir().join("cargo-fuzz");
    if !fuzz_bin.exists() {
        println!("fuzz: installing cargo-fuzz from crates.io");
        run(Command::new("cargo").args(["install", "cargo-fuzz"]))?;
    }
    if !crate::bootstrap::browser_toolchain_ready() {
        return Err(format!("fuzz: needs the {BROWSER_TOOLCHAIN} toolchain (`cargo xtask bootstrap` installs it)"));
    }
    let dir = root().join("fuzz");
    // One set of pins: the fuzz crate resolves from the workspace's lock.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("fuzz: copying Cargo.lock: {e}"))?;
    let secs = (minutes * 60.0).round().max(1.0) as u64;
    let mut rows = Vec::new();
    for t in &targets {
        let work = dir.join("corpus-run").join(t);
        let artifacts = dir.join("artifacts").join(t);
        for d in [&work, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("fuzz: {}: {e}", d.display()))?;
        }
        println!("==> fuzz {t} for {secs} s");
        let out = Command::new("cargo")
            .current_dir(&dir)
            .args([&format!("+{BROWSER_TOOLCHAIN}"), "fuzz", "run", "--release", t])
            .arg(&work)
            .arg(dir.join("corpus").join(t))
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-print_final_stats=1",
                "-max_len=65536",
                "-timeout=10",
                "-rss_limit_mb=2048",
            ])
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .output()
            .map_err(|e| format!("fuzz: cannot start cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stat = |name: &str| {
            log.lines().find_map(|l| {
                l.strip_prefix(name).and_then(|r| r.trim().trim_start_matches(':').trim().parse::<u64>().ok())
            })
        };
        let execs = stat("stat::number_of_executed_units").unwrap_or(0);
        let rate = stat("stat::average_exec_per_sec").unwrap_or(0);
        let crashed = !out.status.success();
        if crashed {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        rows.push((t.to_string(), execs, rate, crashed));
    }
    println!("\n{:<18} {:>14} {:>10}  result", "target", "executions", "exec/s");
    let mut total = 0;
    for (t, execs, rate, crashed) in &rows {
        total += execs;
        println!(
            "{t:<18} {execs:>14} {rate:>10}  {}",
            if *crashed { "CRASH (see fuzz/artifacts)" } else { "0 crashes" }
        );
    }
    println!("{:<18} {total:>14}", "total");
    if rows.iter().any(|r| r.3) { Err("fuzz: a target crashed".into()) } else { Ok(()) }
}
