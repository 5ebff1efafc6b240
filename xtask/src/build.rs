//! Builds: the browser module (wasm-bindgen `--target web` into `www/pkg/`,
//! then wasm-opt) and the Worker (worker-build into `crates/edge/build/`, or
//! `build-test/` with the test-only routes). A build whose output is newer
//! than every input is skipped, because wrangler runs the Worker's build
//! command on each start.

use crate::util::{cargo_bin_dir, newest_mtime, node_bin, root, run, tool_env};
use std::path::Path;
use std::process::Command;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Production,
    Test,
}

pub fn all(mode: Mode) -> Result<(), String> {
    browser()?;
    dashboard_vendor()?;
    worker(mode)
}

/// The dashboard's one library, uPlot (its charts), from the npm package
/// bootstrap installed (`package.json`), into `www/dashboard/vendor/`:
/// served from the collector's own origin, never a CDN.
pub fn dashboard_vendor() -> Result<(), String> {
    let from = root().join("node_modules/uplot/dist");
    let to = root().join("www/dashboard/vendor");
    std::fs::create_dir_all(&to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for f in ["uPlot.iife.min.js", "uPlot.min.css"] {
        std::fs::copy(from.join(f), to.join(f))
            .map_err(|e| format!("copying uPlot's {f} (run `cargo xtask bootstrap`): {e}"))?;
    }
    Ok(())
}

fn fresh(output: &Path, inputs: &[&str]) -> bool {
    let Some(out) = std::fs::metadata(output).and_then(|m| m.modified()).ok() else {
        return false;
    };
    let root = root();
    inputs.iter().all(|i| newest_mtime(&root.join(i)).is_none_or(|t| t <= out))
}

const CORE_INPUTS: [&str; 3] = ["crates/core", "Cargo.lock", "Cargo.toml"];

pub fn worker(mode: Mode) -> Result<(), String> {
    let out_dir = match mode {
        Mode::Production => "build",
        Mode::Test => "build-test",
    };
    let edge = root().join("crates/edge");
    if mode == Mode::Production {
        production_assets(&root().join("www"), &edge.join("build/www"))?;
    }
    let marker = edge.join(out_dir).join("index.js");
    if fresh(&marker, &[&CORE_INPUTS[..], &["crates/edge"]].concat()) {
        println!("build: Worker ({mode:?}) is up to date");
        return Ok(());
    }
    println!("build: Worker ({mode:?}) with worker-build");
    let mut cmd = Command::new(cargo_bin_dir().join("worker-build"));
    cmd.current_dir(&edge).args(["--release", "--out-dir", out_dir]);
    if mode == Mode::Test {
        cmd.args(["--", "--features", "test-routes"]);
    }
    run(tool_env(&mut cmd))?;
    // Touch the marker so an up-to-date check does not depend on whether
    // worker-build rewrote an identical file.
    let now = std::fs::File::options().append(true).open(&marker);
    if let Ok(f) = now {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Ok(())
}

/// What `wrangler deploy` serves (`[assets]` in wrangler.toml): `www/`
/// without the demo site, which is for `cargo xtask dev` and the tests only
/// (they serve `www/` itself). Rebuilt from scratch each time.
fn production_assets(www: &Path, out: &Path) -> Result<(), String> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("removing {}: {e}", out.display()))?;
    }
    copy_tree(www, out, &|rel: &Path| rel.starts_with("demo"))
}

fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<(), String> {
    fn walk(base: &Path, dir: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let rel = path.strip_prefix(base).map_err(|e| e.to_string())?;
            if skip(rel) {
                continue;
            }
            let dest = to.join(rel);
            if path.is_dir() {
                std::fs::create_dir_all(&dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
                walk(base, &path, to, skip)?;
            } else {
                std::fs::copy(&path, &dest).map_err(|e| format!("copying {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    walk(from, from, to, skip)
}

/// The browser module: release wasm on the pinned nightly (build-std with
/// `-Cpanic=immediate-abort`: no panic or formatting machinery ships),
/// wasm-bindgen glue for `--target web`, then `wasm-opt -Oz`. Output:
/// `www/pkg/microfunnel.js` and `www/pkg/microfunnel_bg.wasm`, served next
/// to the loader.
pub fn browser() -> Result<(), String> {
    let pkg = root().join("www/pkg");
    let wasm_out = pkg.join("microfunnel_bg.wasm");
    if fresh(&wasm_out, &[&CORE_INPUTS[..], &["crates/browser", "xtask/src/build.rs"]].concat()) {
        println!("build: browser module is up to date");
        return Ok(());
    }
    wasm(&["--lib"], "microfunnel_browser.wasm", &pkg, "microfunnel")
}

/// The size probe (`crates/browser/examples/core_probe.rs`), built exactly
/// as the module is, into `target/size-probe/`. Returns the wasm's path.
pub fn core_probe() -> Result<std::path::PathBuf, String> {
    let out = target_dir().join("size-probe");
    wasm(&["--example", "core_probe"], "examples/core_probe.wasm", &out, "core_probe")?;
    Ok(out.join("core_probe_bg.wasm"))
}

/// Builds one wasm target of the browser crate (`target`: cargo's selector),
/// then wasm-bindgen and wasm-opt into `out_dir/{name}.js` and
/// `out_dir/{name}_bg.wasm`.
fn wasm(target: &[&str], artifact: &str, out_dir: &Path, name: &str) -> Result<(), String> {
    let root = root();
    let nightly = crate::bootstrap::browser_toolchain_ready();
    let built = if nightly {
        println!("build: {name} (wasm32, profile browser, {})", crate::bootstrap::BROWSER_TOOLCHAIN);
        let mut cmd = Command::new("rustup");
        cmd.current_dir(&root)
            .args(["run", crate::bootstrap::BROWSER_TOOLCHAIN, "cargo", "build", "--profile", "browser"])
            .args(["--package", "microfunnel-browser", "--target", "wasm32-unknown-unknown"])
            .args(target)
            .args(["-Zbuild-std=std,panic_abort"])
            // Its own directory: other flags than the stable builds, so neither
            // invalidates the other's artifacts.
            .arg("--target-dir")
            .arg(target_dir().join("browser-nightly"))
            // sha2's compact (rolled-loop) SHA-256 for the e-mail key: a few
            // KB smaller than the unrolled default, and speed is moot there.
            .env(
                "RUSTFLAGS",
                "-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none \
                 --cfg sha2_backend_soft=\"compact\"",
            )
            .env_remove("RUSTC")
            .env_remove("RUSTDOC")
            .env_remove("CARGO");
        run(tool_env(&mut cmd))?;
        target_dir().join("browser-nightly/wasm32-unknown-unknown/browser").join(artifact)
    } else {
        // No nightly on this machine (bootstrap could not fetch it): the same
        // module on stable, without build-std — it works, it is just larger.
        println!(
            "build: {name} (wasm32, profile browser, stable: {} is not installed, the module ships larger)",
            crate::bootstrap::BROWSER_TOOLCHAIN
        );
        run(tool_env(&mut crate::util::cargo())
            .args(["build", "--profile", "browser", "--package", "microfunnel-browser"])
            .args(["--target", "wasm32-unknown-unknown"])
            .args(target))?;
        target_dir().join("wasm32-unknown-unknown/browser").join(artifact)
    };
    run(Command::new(cargo_bin_dir().join("wasm-bindgen"))
        .arg(&built)
        .args(["--target", "web", "--no-typescript", "--out-name", name, "--out-dir"])
        .arg(out_dir))?;
    let wasm_out = out_dir.join(format!("{name}_bg.wasm"));
    run(Command::new(node_bin("wasm-opt"))
        .args(["-Oz", "--converge", "--strip-debug", "--strip-producers"])
        .arg("--enable-bulk-memory")
        .arg("--enable-nontrapping-float-to-int")
        .arg("--enable-sign-ext")
        .arg("--enable-mutable-globals")
        .arg(&wasm_out)
        .arg("-o")
        .arg(&wasm_out))?;
    Ok(())
}

pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_assets_leave_the_demo_out() {
        let tmp = std::env::temp_dir().join(format!("mf-assets-{}", std::process::id()));
        let www = tmp.join("www");
        for f in
            ["mf.js", "_headers", "dashboard/index.html", "demo/index.html", "demo/tarifs/index.html", "pkg/m.wasm"]
        {
            let p = www.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let out = tmp.join("out");
        std::fs::create_dir_all(out.join("demo")).unwrap();
        production_assets(&www, &out).unwrap();
        assert!(out.join("mf.js").is_file() && out.join("_headers").is_file());
        assert!(out.join("dashboard/index.html").is_file() && out.join("pkg/m.wasm").is_file());
        assert!(!out.join("demo").exists(), "the demo is not deployed, and a stale copy goes too");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
