//! `cargo xtask bench-attribution`: microfunnel's attribution against
//! ChannelAttribution, side by side on the same file. Not part of the
//! default test run.
//!
//! Steps: generate journeys (below) into `<target>/bench-attribution/`,
//! build the CLI in release, create `<target>/bench-venv` and
//! `pip install channelattribution matplotlib` (ChannelAttribution's import
//! needs matplotlib; it compiles its C++ core with the local g++), then run
//! `tools/bench-attribution/compare.py`, which times `markov_model` and
//! `heuristic_models` against our whole CLI process and prints the ratios
//! and the largest per-channel differences.
//!
//! Options: `--journeys N` (default 1 000 000), `--seed S` (default 42),
//! `--order K` (default 1), `--generate-only`.
//!
//! **Journey generator** (deterministic: splitmix64 seeded by `--seed`).
//! Twelve channels. Per journey: a length 1 + Geometric(0.35) capped at 12
//! (mean ≈ 2.9 touches); the first channel from a fixed skewed start
//! distribution; each next channel from a per-channel transition row (drawn
//! once from the seed, with a 25% chance of repeating the same channel); the
//! journey converts with probability 1 − Π over its distinct channels of
//! (1 − lift_c), lift_c ∈ [0.01, 0.09] drawn once; a conversion's value is
//! 20 + 180·u² (u uniform) rounded to cents. Journeys are aggregated by
//! path into ChannelAttribution's table
//! `path;total_conversions;total_conversion_value;total_null`, sorted by
//! path.

use microfunnel_core::attribution::JourneyPath;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHANNELS: [&str; 12] = [
    "Paid Search",
    "Organic Search",
    "Display",
    "Email",
    "Paid Social",
    "Organic Social",
    "Referral",
    "Direct",
    "SMS",
    "Affiliates",
    "Video",
    "Push",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn pick(&mut self, cdf: &[f64]) -> usize {
        let u = self.unit() * cdf.last().copied().unwrap_or(1.0);
        cdf.iter().position(|c| u < *c).unwrap_or(cdf.len().saturating_sub(1))
    }
}

fn cdf(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

/// Generates `journeys` journeys and writes the aggregated table to `out`.
/// Returns the number of distinct paths.
pub fn generate(journeys: u64, seed: u64, out: &Path) -> Result<usize, String> {
    let n = CHANNELS.len();
    let mut rng = Rng(seed);
    let start = cdf(&[30.0, 22.0, 12.0, 8.0, 9.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.5, 0.5]);
    let trans: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut w: Vec<f64> = (0..n).map(|_| 0.2 + rng.unit()).collect();
            let others: f64 = w.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, x)| x).sum();
            if let Some(x) = w.get_mut(i) {
                *x = others / 3.0; // 25% repeat
            }
            cdf(&w)
        })
        .collect();
    let lift: Vec<f64> = (0..n).map(|_| 0.01 + 0.08 * rng.unit()).collect();
    let mut table: HashMap<Vec<u8>, (u64, u64, i64)> = HashMap::new();
    let mut path = Vec::new();
    for _ in 0..journeys {
        let mut len = 1;
        while len < 12 && rng.unit() >= 0.35 {
            len += 1;
        }
        path.clear();
        let mut c = rng.pick(&start);
        let mut seen = 0_u16;
        let mut p_null = 1.0;
        for i in 0..len {
            if i > 0 {
                c = rng.pick(trans.get(c).map_or(&start[..], Vec::as_slice));
            }
            path.push(c as u8);
            if seen >> c & 1 == 0 {
                seen |= 1 << c;
                p_null *= 1.0 - lift.get(c).copied().unwrap_or(0.0);
            }
        }
        let e = table.entry(path.clone()).or_insert((0, 0, 0));
        if rng.unit() < 1.0 - p_null {
            let u = rng.unit();
            e.0 += 1;
            e.2 += (2000.0 + 18000.0 * u * u).round() as i64;
        } else {
            e.1 += 1;
        }
    }
    let mut rows: Vec<(String, (u64, u64, i64))> = table
        .into_iter()
        .map(|(p, v)| {
            let names: Vec<&str> = p.iter().map(|&c| CHANNELS.get(c as usize).copied().unwrap_or("?")).collect();
            (JourneyPath::of(names).to_string(), v)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::from("path;total_conversions;total_conversion_value;total_null\n");
    for (p, (conv, null, cents)) in &rows {
        let _ = writeln!(text, "{p};{conv};{}.{:02};{null}", cents / 100, cents % 100);
    }
    std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(rows.len())
}

fn workspace_root() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR")
        && let Some(parent) = Path::new(&dir).parent()
        && parent.join("tools/bench-attribution").is_dir()
    {
        return Ok(parent.to_path_buf());
    }
    let mut dir = std::env::current_dir().map_err(|e| e.to_string())?;
    loop {
        if dir.join("tools/bench-attribution").is_dir() {
            return Ok(dir);
        }
        if !dir.pop() {
            return Err("cannot find the workspace root (tools/bench-attribution)".into());
        }
    }
}

fn run_cmd(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what} failed: {status}")) }
}

/// Entry point of `cargo xtask bench-attribution [options]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut journeys = 1_000_000_u64;
    let mut seed = 42_u64;
    let mut order = 1_u32;
    let mut generate_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--journeys" => journeys = value("--journeys")?.parse().map_err(|e| format!("--journeys: {e}"))?,
            "--seed" => seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--order" => order = value("--order")?.parse().map_err(|e| format!("--order: {e}"))?,
            "--generate-only" => generate_only = true,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    let root = workspace_root()?;
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    let dir = target.join("bench-attribution");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let data = dir.join(format!("journeys-{journeys}-{seed}.csv"));
    let t0 = std::time::Instant::now();
    let paths = generate(journeys, seed, &data)?;
    println!(
        "generated {journeys} journeys ({paths} distinct paths, 12 channels) in {:.1} s → {}",
        t0.elapsed().as_secs_f64(),
        data.display()
    );
    if generate_only {
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_cmd(
        Command::new(&cargo).current_dir(&root).args(["build", "--release", "-p", "microfunnel-cli"]),
        "cargo build --release -p microfunnel-cli",
    )?;
    let cli = target.join("release/microfunnel");
    let venv = target.join("bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run_cmd(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv")?;
    }
    run_cmd(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", "channelattribution", "matplotlib"]),
        "pip install channelattribution matplotlib",
    )?;
    run_cmd(
        Command::new(&python)
            .arg(root.join("tools/bench-attribution/compare.py"))
            .arg(&data)
            .arg(&cli)
            .args(["--order", &order.to_string()]),
        "compare.py",
    )
}
