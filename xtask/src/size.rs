//! `cargo xtask size`: the browser size budget. Gzip (`gzip -9`) of the
//! loader, the wasm-bindgen glue and the wasm as served from `www/`, and of
//! the optional banner; fails above budget: loader ≤ 1.5 KB, banner ≤ 1.5 KB,
//! loader + glue + wasm ≤ 25 KB.

use crate::util::root;
use std::path::Path;
use std::process::Command;

pub const LOADER_BUDGET: u64 = 1536;
pub const TOTAL_BUDGET: u64 = 25 * 1024;

/// The optional built-in consent banner (`www/banner.js`).
const BANNER: &str = "www/banner.js";

const FILES: [(&str, &str); 3] =
    [("loader", "www/mf.js"), ("glue", "www/pkg/microfunnel.js"), ("wasm", "www/pkg/microfunnel_bg.wasm")];

pub fn run(args: &[String]) -> Result<(), String> {
    // What the build needs (the nightly, wasm-bindgen, wasm-opt), as `dev` and `test` do.
    crate::bootstrap::run()?;
    if !args.iter().any(|a| a == "--no-build") {
        crate::build::browser()?;
    }
    if args.iter().any(|a| a == "--probe") {
        return probe();
    }
    let report = check()?;
    println!("{report}");
    Ok(())
}

/// `--probe`: the core's share of the module, built alone (see
/// `crates/browser/examples/core_probe.rs`) and set beside the module's own
/// wasm and the budget. Prints figures; never fails on them.
fn probe() -> Result<(), String> {
    let wasm = crate::build::core_probe()?;
    let (raw, gz) = gzip_len(&wasm)?;
    let (mraw, mgz) = gzip_len(&root().join("www/pkg/microfunnel_bg.wasm"))?;
    println!("browser size probe (gzip -9)");
    println!("  {:<28} {:>10} {:>10}", "part", "raw", "gzip");
    println!("  {:<28} {:>10} {:>10}", "core only (no DOM, no I/O)", kb(raw), kb(gz));
    println!("  {:<28} {:>10} {:>10}", "whole module wasm", kb(mraw), kb(mgz));
    println!(
        "  core share of the module's wasm: {:.0}% (gzip); budget for loader + glue + wasm: {}",
        100.0 * gz as f64 / mgz.max(1) as f64,
        kb(TOTAL_BUDGET)
    );
    Ok(())
}

fn gzip_len(path: &Path) -> Result<(u64, u64), String> {
    let raw = std::fs::metadata(path).map_err(|e| format!("{}: {e} (run `cargo xtask build`)", path.display()))?.len();
    let out =
        Command::new("gzip").args(["-9", "-c"]).arg(path).output().map_err(|e| format!("cannot run gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip failed on {}", path.display()));
    }
    Ok((raw, out.stdout.len() as u64))
}

fn kb(n: u64) -> String {
    format!("{:.2} KB", n as f64 / 1024.0)
}

/// Measures the built files; `Ok(table)` within budget, `Err(table + why)` above.
pub fn check() -> Result<String, String> {
    let root = root();
    let mut table = String::from("browser size (gzip -9)\n");
    table.push_str(&format!("  {:<8} {:>10} {:>10}  {}\n", "part", "raw", "gzip", "file"));
    let mut total = 0;
    let mut loader = 0;
    for (name, file) in FILES {
        let (raw, gz) = gzip_len(&root.join(file))?;
        total += gz;
        if name == "loader" {
            loader = gz;
        }
        table.push_str(&format!("  {:<8} {:>10} {:>10}  {file}\n", name, kb(raw), kb(gz)));
    }
    table.push_str(&format!("  {:<8} {:>10} {:>10}\n", "total", "", kb(total)));
    // Fetched before consent too, but only on sites using `data-consent="banner"`:
    // shown apart from the module's total, held to the loader's budget.
    let (raw, banner) = gzip_len(&root.join(BANNER))?;
    table.push_str(&format!(
        "  {:<8} {:>10} {:>10}  {BANNER} (only with data-consent=\"banner\")\n",
        "banner",
        kb(raw),
        kb(banner)
    ));
    table.push_str(&format!("  budget: loader and banner ≤ {} each, total ≤ {}", kb(LOADER_BUDGET), kb(TOTAL_BUDGET)));
    let mut over = Vec::new();
    if loader > LOADER_BUDGET {
        over.push(format!("loader {} > {}", kb(loader), kb(LOADER_BUDGET)));
    }
    if banner > LOADER_BUDGET {
        over.push(format!("banner {} > {}", kb(banner), kb(LOADER_BUDGET)));
    }
    if total > TOTAL_BUDGET {
        over.push(format!("total {} > {}", kb(total), kb(TOTAL_BUDGET)));
    }
    if over.is_empty() { Ok(table) } else { Err(format!("{table}\nover budget: {}", over.join("; "))) }
}
