//! `cargo xtask test`: every check and every suite, in order —
//! bootstrap; `cargo fmt --check`; clippy `-D warnings` (host, and wasm32 for
//! the browser and edge crates); native unit, integration and vector tests;
//! the vectors and wasm tests in headless Chromium; the end-to-end suites
//! (`tests/e2e/*.test.mjs`, node's test runner) against `wrangler dev`
//! (workerd + local D1) with the test build, the vectors through the Worker
//! among them; a `wrangler deploy --dry-run`. It runs every step even after a
//! failure, then prints the tally and a closing `N passed, N failed`.

use crate::build::{self, Mode};
use crate::util::{cargo, describe, node_bin, root, tool_env};
use crate::wrangler::{Dev, free_port, migrate, seed_demo, wrangler};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    rows: Vec<(String, u64, u64, f64)>,
    passed: u64,
    failed: u64,
    /// Golden-vector cases run per side, from the `vectors (<side>): N cases` lines.
    vector_cases: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, step: &str, passed: u64, failed: u64, secs: f64) {
        self.passed += passed;
        self.failed += failed;
        self.rows.push((step.to_owned(), passed, failed, secs));
    }
}

/// Counts from a test runner's output lines.
#[derive(Default, Debug, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
}

fn number_before(line: &str, word: &str) -> Option<u64> {
    let idx = line.find(word)?;
    line.get(..idx)?.split_whitespace().last()?.trim_end_matches(';').parse().ok()
}

/// `vectors (<side>): N cases …` (after an optional TAP `# `) → (side, N).
fn vector_line(line: &str) -> Option<(String, u64)> {
    let rest = line.trim().trim_start_matches("# ").strip_prefix("vectors (")?;
    let (side, rest) = rest.split_once("): ")?;
    let n = rest.split_whitespace().next()?.parse().ok()?;
    rest.contains(" cases").then(|| (side.to_owned(), n))
}

impl Counts {
    fn read(&mut self, line: &str) {
        let l = line.trim();
        if l.starts_with("test result:") {
            // libtest and wasm-bindgen-test-runner: "test result: ok. 3 passed; 0 failed; …"
            self.passed += number_before(l, " passed").unwrap_or(0);
            self.failed += number_before(l, " failed").unwrap_or(0);
        } else if let Some(n) = l.strip_prefix("# pass ") {
            self.passed += n.trim().parse().unwrap_or(0);
        } else if let Some(n) = l.strip_prefix("# fail ") {
            self.failed += n.trim().parse().unwrap_or(0);
        }
    }
}

/// Runs a test command, echoing its output and counting its tests. A command
/// that fails without any failed test counted is one failure of its own.
fn suite(tally: &mut Tally, step: &str, cmd: &mut Command) {
    println!("\n==> {step}: {}", describe(cmd));
    let started = Instant::now();
    let mut counts = Counts::default();
    let ok = match cmd.stdout(Stdio::piped()).spawn() {
        Ok(mut child) => {
            if let Some(out) = child.stdout.take() {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    println!("{line}");
                    counts.read(&line);
                    if let Some((side, n)) = vector_line(&line) {
                        *tally.vector_cases.entry(side).or_default() += n;
                    }
                }
            }
            child.wait().map(|s| s.success()).unwrap_or(false)
        }
        Err(e) => {
            println!("cannot start: {e}");
            false
        }
    };
    if !ok && counts.failed == 0 {
        counts.failed = 1;
    }
    tally.add(step, counts.passed, counts.failed, started.elapsed().as_secs_f64());
}

/// A check with no test count of its own (fmt, clippy, a build): one test.
fn check(tally: &mut Tally, step: &str, result: Result<(), String>, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => tally.add(step, 1, 0, secs),
        Err(e) => {
            println!("FAILED {step}: {e}");
            tally.add(step, 0, 1, secs);
        }
    }
}

fn check_cmd(tally: &mut Tally, step: &str, cmd: &mut Command) {
    println!("\n==> {step}: {}", describe(cmd));
    let started = Instant::now();
    let result = crate::util::run(cmd);
    check(tally, step, result, started);
}

pub fn run() -> Result<(), String> {
    let all_started = Instant::now();
    let started = Instant::now();
    crate::bootstrap::run()?;
    let mut tally = Tally::default();
    check(&mut tally, "bootstrap", Ok(()), started);

    check_cmd(&mut tally, "rustfmt", cargo().args(["fmt", "--all", "--check"]));
    check_cmd(
        &mut tally,
        "clippy (host)",
        cargo().args(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]),
    );
    check_cmd(
        &mut tally,
        "clippy (wasm32)",
        cargo().args([
            "clippy",
            "--package",
            "microfunnel-browser",
            "--package",
            "microfunnel-edge",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    );
    // The fuzz targets are their own crate, outside the workspace: checked
    // here so an API change cannot leave them unbuildable until the next
    // `cargo xtask fuzz` (as one did).
    check_cmd(
        &mut tally,
        "fuzz targets build (cargo check)",
        cargo().args(["check", "--manifest-path", "fuzz/Cargo.toml", "--bins"]),
    );
    suite(
        &mut tally,
        "native tests (unit, integration, CLI)",
        cargo().args([
            "test",
            "--workspace",
            "--features",
            "microfunnel-core/vectors",
            "--",
            "--skip",
            "golden_vectors",
        ]),
    );
    let started = Instant::now();
    println!("\n==> customer value: CDNOW published fit and lifetimes (tests/clv/check_lifetimes.py)");
    check(&mut tally, "customer value vs CDNOW and lifetimes", crate::clv::check(), started);
    suite(
        &mut tally,
        "golden vectors (native)",
        cargo().args([
            "test",
            "--package",
            "microfunnel-core",
            "--features",
            "vectors",
            "--test",
            "vectors",
            "--",
            "--nocapture",
        ]),
    );
    suite(
        &mut tally,
        "wasm in Chromium (wasm-bindgen-test: vectors, browser API)",
        tool_env(&mut cargo()).args([
            "test",
            "--package",
            "microfunnel-browser",
            "--target",
            "wasm32-unknown-unknown",
            "--features",
            "vectors",
            "--",
            "--nocapture",
        ]),
    );

    let started = Instant::now();
    let built = build::browser().and_then(|()| build::dashboard_vendor()).and_then(|()| build::worker(Mode::Test));
    let built_ok = built.is_ok();
    check(&mut tally, "build (browser module, Worker test build)", built, started);
    if built_ok {
        e2e(&mut tally);
    }

    let started = Instant::now();
    let out = root().join("target/deploy-dry-run");
    // Earlier bundles (named by content hash) would be counted too.
    let _ = std::fs::remove_dir_all(&out);
    let dry = crate::util::run(wrangler().args(["deploy", "--dry-run", "--outdir"]).arg(&out).stdin(Stdio::null()));
    if dry.is_ok() {
        println!("deploy dry-run bundle: {}", bundle_sizes(&out));
    }
    check(&mut tally, "wrangler deploy --dry-run (production build)", dry, started);

    println!("\n{:<62} {:>7} {:>7} {:>8}", "step", "passed", "failed", "seconds");
    for (step, p, f, s) in &tally.rows {
        println!("{step:<62} {p:>7} {f:>7} {s:>8.1}");
    }
    let sides: Vec<String> = tally.vector_cases.iter().map(|(side, n)| format!("{side} {n}")).collect();
    println!("golden vector cases per side: {}", if sides.is_empty() { "none seen".into() } else { sides.join(", ") });
    println!("total time {:.1} s", all_started.elapsed().as_secs_f64());
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 { Ok(()) } else { Err(format!("{} failed", tally.failed)) }
}

/// `cargo xtask e2e [NAME…]`: the browser module and the Worker's test
/// build, then only the end-to-end suites whose file names contain one of
/// the NAMEs (all of them without any) — the quick loop while working on one
/// suite; `cargo xtask test` still runs everything.
pub fn e2e_only(filters: &[String]) -> Result<(), String> {
    crate::bootstrap::run()?;
    build::browser().and_then(|()| build::dashboard_vendor()).and_then(|()| build::worker(Mode::Test))?;
    let mut tally = Tally::default();
    e2e_filtered(&mut tally, filters);
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 { Ok(()) } else { Err(format!("{} failed", tally.failed)) }
}

/// The end-to-end suites against a fresh `wrangler dev --env test`.
fn e2e(tally: &mut Tally) {
    e2e_filtered(tally, &[]);
}

fn e2e_filtered(tally: &mut Tally, filters: &[String]) {
    let root = root();
    let state = root.join("target/e2e/state");
    let _ = std::fs::remove_dir_all(&state);
    let started = Instant::now();
    let migrated = migrate(Some("test"), &state).and_then(|()| seed_demo(Some("test"), &state));
    let migrated_ok = migrated.is_ok();
    check(tally, "D1 migrations and demo seed (local, test env)", migrated, started);
    if !migrated_ok {
        return;
    }
    let started = Instant::now();
    let log = root.join("target/e2e/wrangler.log");
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return check(tally, "wrangler dev (test env)", Err(e), started),
    };
    let mut dev = match Dev::start(Some("test"), port, &state, Some(&log), &[]) {
        Ok(d) => d,
        Err(e) => return check(tally, "wrangler dev (test env)", Err(e), started),
    };
    if let Err(e) = dev.wait_healthy(Duration::from_secs(120)) {
        println!("{}", std::fs::read_to_string(&log).unwrap_or_default());
        return check(tally, "wrangler dev (test env)", Err(e), started);
    }
    let mut files: Vec<_> =
        std::fs::read_dir(root.join("tests/e2e")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.to_string_lossy().ends_with(".test.mjs"));
    files.retain(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
    });
    files.sort();
    let mut cmd = Command::new("node");
    cmd.current_dir(&root)
        .args(["--test", "--test-reporter=tap", "--test-concurrency=1"])
        .args(&files)
        .env("MF_BASE_URL", &dev.base_url)
        .env("MF_STATE_DIR", &state)
        .env("MF_WRANGLER", node_bin("wrangler"))
        .env("MF_PYTHON", root.join("target/venv/bin/python"));
    suite(tally, "end-to-end against workerd (node --test)", tool_env(&mut cmd));
    drop(dev);
}

fn bundle_sizes(dir: &std::path::Path) -> String {
    let mut parts = Vec::new();
    let mut total = 0u64;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata()
                && m.is_file()
            {
                total += m.len();
                parts.push(format!("{} {:.1} KiB", e.file_name().to_string_lossy(), m.len() as f64 / 1024.0));
            }
        }
    }
    parts.sort();
    format!("{} (total {:.1} KiB)", parts.join(", "), total as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_libtest_wasm_and_tap_lines() {
        let mut c = Counts::default();
        c.read("test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        c.read("test result: FAILED. 3 passed; 2 failed; 0 ignored");
        c.read("# pass 7");
        c.read("# fail 1");
        c.read("ok 1 - something passed here");
        assert_eq!(c, Counts { passed: 22, failed: 3 });
    }

    #[test]
    fn reads_vector_case_lines_of_every_side() {
        assert_eq!(vector_line("vectors (native): 198 cases passed, 0 failed, 9 files"), Some(("native".into(), 198)));
        assert_eq!(vector_line("# vectors (workerd): 12 cases in 2 files"), Some(("workerd".into(), 12)));
        assert_eq!(vector_line("vectors (wasm): 7 cases in core/url_host.json"), Some(("wasm".into(), 7)));
        assert_eq!(vector_line("test vectors_core_url_host_json ... ok"), None);
    }
}
