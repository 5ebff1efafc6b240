//! `cargo xtask bootstrap`: installs what builds and tests need, each step
//! skipped when already satisfied, so a second run takes seconds and installs
//! nothing. Every install says what it installs.

use crate::util::{cargo, cargo_bin_dir, probe, root, run as run_cmd};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The pinned nightly the browser module is built with (`cargo xtask build`):
/// `-Zbuild-std` with `-Cpanic=immediate-abort` drops std's panic and
/// formatting machinery from the shipped wasm, which the 25 KB budget needs.
/// Everything else (tests, clippy, the Worker, the CLI) uses stable.
pub const BROWSER_TOOLCHAIN: &str = "nightly-2026-05-19";

pub fn run() -> Result<(), String> {
    let started = Instant::now();
    let mut installed = Vec::new();
    rust_components(&mut installed)?;
    wasm_target(&mut installed)?;
    browser_toolchain(&mut installed)?;
    wasm_bindgen_cli(&mut installed)?;
    worker_build(&mut installed)?;
    npm_packages(&mut installed)?;
    python_venv("requirements.txt", &mut installed)?;
    chromium(&mut installed)?;
    let secs = started.elapsed().as_secs_f64();
    if installed.is_empty() {
        println!("bootstrap: everything already installed ({secs:.1} s)");
    } else {
        println!("bootstrap: installed {} ({secs:.1} s)", installed.join(", "));
    }
    Ok(())
}

fn rust_components(installed: &mut Vec<String>) -> Result<(), String> {
    for (component, check) in [("rustfmt", ["fmt", "--version"]), ("clippy", ["clippy", "--version"])] {
        if probe(cargo().args(check)).is_none() {
            println!("bootstrap: installing the {component} component");
            run_cmd(Command::new("rustup").args(["component", "add", component]))?;
            installed.push(component.to_owned());
        }
    }
    Ok(())
}

fn wasm_target(installed: &mut Vec<String>) -> Result<(), String> {
    let list = probe(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !list.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        println!("bootstrap: installing the wasm32-unknown-unknown target");
        run_cmd(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
        installed.push("wasm32-unknown-unknown".into());
    }
    Ok(())
}

/// Whether the pinned nightly with `rust-src` is installed.
pub fn browser_toolchain_ready() -> bool {
    probe(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", BROWSER_TOOLCHAIN]))
        .is_some_and(|list| list.lines().any(|l| l.trim().starts_with("rust-src")))
}

/// The pinned nightly with `rust-src` (build-std compiles std from it; no
/// target component is needed). Probed first, so a second run installs nothing.
/// A machine that cannot fetch it still builds and tests everything: the
/// browser module is then built on stable, larger (`cargo xtask size` says so).
fn browser_toolchain(installed: &mut Vec<String>) -> Result<(), String> {
    if !browser_toolchain_ready() {
        println!(
            "bootstrap: installing the {BROWSER_TOOLCHAIN} toolchain with rust-src (rustup, for the browser build)"
        );
        let result = run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            BROWSER_TOOLCHAIN,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
        match result {
            Ok(()) => installed.push(BROWSER_TOOLCHAIN.into()),
            Err(e) => println!(
                "bootstrap: WARNING: cannot install {BROWSER_TOOLCHAIN} ({e}); the browser module will be built on \
                 stable, without build-std, and ship larger"
            ),
        }
    }
    Ok(())
}

/// The wasm-bindgen version Cargo.lock pins: the CLI must match it exactly.
pub fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|l| l.trim().strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_owned());
        }
    }
    Err("Cargo.lock has no wasm-bindgen entry".into())
}

fn cargo_install(krate: &str, version: &str, installed: &mut Vec<String>) -> Result<(), String> {
    println!("bootstrap: installing {krate} {version} (cargo install, a few minutes)");
    // Without --locked: the registry lacks some of the versions their lock files name.
    run_cmd(Command::new("cargo").args(["install", krate, "--version", &format!("={version}")]))?;
    installed.push(format!("{krate} {version}"));
    Ok(())
}

fn wasm_bindgen_cli(installed: &mut Vec<String>) -> Result<(), String> {
    let want = locked_wasm_bindgen()?;
    let have = probe(Command::new(cargo_bin_dir().join("wasm-bindgen")).arg("--version")).unwrap_or_default();
    let runner = cargo_bin_dir().join("wasm-bindgen-test-runner");
    if have != format!("wasm-bindgen {want}") || !runner.exists() {
        cargo_install("wasm-bindgen-cli", &want, installed)?;
    }
    Ok(())
}

fn worker_build(installed: &mut Vec<String>) -> Result<(), String> {
    let have = probe(Command::new(cargo_bin_dir().join("worker-build")).arg("--version")).unwrap_or_default();
    if !have.contains(WORKER_BUILD_VERSION) {
        cargo_install("worker-build", WORKER_BUILD_VERSION, installed)?;
    }
    Ok(())
}

/// `npm ci` when node_modules does not match package-lock.json. npm keeps a
/// copy of the lock it installed as node_modules/.package-lock.json; we keep
/// our own stamp of the committed lock next to it.
fn npm_packages(installed: &mut Vec<String>) -> Result<(), String> {
    let root = root();
    let lock = std::fs::read(root.join("package-lock.json")).map_err(|e| format!("reading package-lock.json: {e}"))?;
    let stamp = root.join("node_modules/.microfunnel-lock");
    let current = std::fs::read(&stamp).ok();
    let complete = ["wrangler", "esbuild", "wasm-opt", "playwright-core", "workerd"]
        .iter()
        .all(|b| root.join("node_modules/.bin").join(b).exists());
    if current.as_deref() != Some(lock.as_slice()) || !complete {
        println!(
            "bootstrap: installing npm packages (npm ci: wrangler, esbuild, binaryen, playwright-core, Segment's analytics-node)"
        );
        // Install scripts never run: workerd ships inside its package, and no
        // tool may download a browser of its own.
        run_cmd(
            Command::new("npm")
                .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                .current_dir(&root),
        )?;
        std::fs::write(&stamp, &lock).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
        installed.push("npm packages".into());
    }
    Ok(())
}

/// The Python tools' venv, `target/venv`: `tools/<requirements>` installed
/// into it from PyPI when that file changed since it was last installed
/// (a stamp beside the venv). `requirements.txt` (Segment's Python library,
/// for the e2e suite) by bootstrap; `requirements-fuzz.txt` (Schemathesis)
/// by `cargo xtask api-fuzz`. Returns the venv's python.
pub fn python_venv(requirements: &str, installed: &mut Vec<String>) -> Result<std::path::PathBuf, String> {
    let root = root();
    let file = root.join("tools").join(requirements);
    let wanted = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let venv = root.join("target/venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(format!(".microfunnel-{requirements}"));
    if python.exists() && std::fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
        return Ok(python);
    }
    if !python.exists() {
        println!("bootstrap: creating the Python venv target/venv");
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    println!("bootstrap: installing tools/{requirements} into target/venv (pip, from PyPI)");
    run_cmd(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"]).arg(&file),
    )?;
    std::fs::write(&stamp, &wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    installed.push(format!("tools/{requirements}"));
    Ok(python)
}

fn chromium(installed: &mut Vec<String>) -> Result<(), String> {
    if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() {
        return Ok(());
    }
    println!("bootstrap: installing Debian's chromium and chromium-driver (apt-get)");
    let root_user = probe(Command::new("id").arg("-u")).as_deref() == Some("0");
    let apt = |args: &[&str]| {
        let mut c = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run_cmd(&mut apt(&["update", "-q"]))?;
    run_cmd(&mut apt(&["install", "-y", "-q", "chromium", "chromium-driver"]))?;
    installed.push("chromium + chromium-driver".into());
    Ok(())
}
