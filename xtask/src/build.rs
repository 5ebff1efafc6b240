//! Builds: the browser module (wasm-bindgen `--target web` into `www/pkg/`,
//! then wasm-opt) and the Worker (worker-build into `crates/edge/build/`, or
//! `build-test/` with the test-only routes). A build is skipped when its
//! stamp — written only once every step succeeded, naming how it was built —
//! is newer than every input, because wrangler runs the Worker's build
//! command on each start. A failed step leaves no stamp (the next build
//! starts over) and, for the module, nothing new in `www/pkg/`: its steps run
//! in a staging directory whose files move in only at the end.

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

/// Whether the build `stamp` stands for is current: the stamp says it was
/// built as `how`, and no input is newer than it.
fn fresh(stamp: &Path, how: &str, inputs: &[&str]) -> bool {
    if std::fs::read_to_string(stamp).ok().as_deref() != Some(how) {
        return false;
    }
    let Some(out) = std::fs::metadata(stamp).and_then(|m| m.modified()).ok() else {
        return false;
    };
    let root = root();
    inputs.iter().all(|i| newest_mtime(&root.join(i)).is_none_or(|t| t <= out))
}

/// Runs `build` with the stamp removed, and writes it (`how`) only if
/// `build` succeeded: an interrupted or failed build is never taken as fresh.
fn stamped(stamp: &Path, how: &str, build: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    match std::fs::remove_file(stamp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", stamp.display())),
    }
    build()?;
    std::fs::write(stamp, how).map_err(|e| format!("writing {}: {e}", stamp.display()))
}

/// Runs `steps` in a fresh staging directory beside `out_dir`, then moves
/// `files` from it into `out_dir`; on any error `out_dir` is left as it was
/// and the staging directory is removed.
fn staged(out_dir: &Path, files: &[String], steps: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let name = out_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = out_dir.with_file_name(format!(".{name}.staging"));
    let _ = std::fs::remove_dir_all(&staging);
    let result = std::fs::create_dir_all(&staging)
        .map_err(|e| format!("creating {}: {e}", staging.display()))
        .and_then(|()| steps(&staging))
        .and_then(|()| {
            for f in files {
                if !staging.join(f).is_file() {
                    return Err(format!("the build made no {f}"));
                }
            }
            std::fs::create_dir_all(out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
            for f in files {
                std::fs::rename(staging.join(f), out_dir.join(f))
                    .map_err(|e| format!("moving {f} into {}: {e}", out_dir.display()))?;
            }
            Ok(())
        });
    let _ = std::fs::remove_dir_all(&staging);
    result
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
    // Beside the output, not in it: worker-build may empty its directory.
    let stamp = edge.join(format!(".{out_dir}.stamp"));
    let how = format!("worker-build {out_dir}");
    if fresh(&stamp, &how, &[&CORE_INPUTS[..], &["crates/edge"]].concat())
        && edge.join(out_dir).join("index.js").is_file()
    {
        println!("build: Worker ({mode:?}) is up to date");
        return Ok(());
    }
    println!("build: Worker ({mode:?}) with worker-build");
    stamped(&stamp, &how, || {
        let mut cmd = Command::new(cargo_bin_dir().join("worker-build"));
        cmd.current_dir(&edge).args(["--release", "--out-dir", out_dir]);
        if mode == Mode::Test {
            cmd.args(["--", "--features", "test-routes"]);
        }
        run(tool_env(&mut cmd))
    })
}

/// What `wrangler deploy` serves (`[assets]` in wrangler.toml): `www/`
/// without the demo site, which is for `cargo xtask dev` and the tests only
/// (they serve `www/` itself). Rebuilt from scratch each time.
fn production_assets(www: &Path, out: &Path) -> Result<(), String> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("removing {}: {e}", out.display()))?;
    }
    // Nor the build's own files (`pkg/.stamp`, a staging directory).
    let hidden = |rel: &Path| rel.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    copy_tree(www, out, &|rel: &Path| rel.starts_with("demo") || hidden(rel))
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
    let stamp = pkg.join(".stamp");
    let how = toolchain_used();
    let inputs = [&CORE_INPUTS[..], &["crates/browser", "xtask/src/build.rs"]].concat();
    if fresh(&stamp, &how, &inputs) && pkg.join("microfunnel_bg.wasm").is_file() && pkg.join("microfunnel.js").is_file()
    {
        println!("build: browser module is up to date");
        return Ok(());
    }
    stamped(&stamp, &how, || wasm(&["--lib"], "microfunnel_browser.wasm", &pkg, "microfunnel"))
}

/// How the module is built on this machine: the pinned nightly with
/// build-std, or stable when that is missing (larger). A module built one
/// way is stale once the other applies.
fn toolchain_used() -> String {
    if crate::bootstrap::browser_toolchain_ready() {
        format!("{} build-std", crate::bootstrap::BROWSER_TOOLCHAIN)
    } else {
        "stable".to_owned()
    }
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
    let files = [format!("{name}.js"), format!("{name}_bg.wasm")];
    staged(out_dir, &files, |staging| {
        run(Command::new(cargo_bin_dir().join("wasm-bindgen"))
            .arg(&built)
            .args(["--target", "web", "--no-typescript", "--out-name", name, "--out-dir"])
            .arg(staging))?;
        let wasm_out = staging.join(format!("{name}_bg.wasm"));
        run(Command::new(node_bin("wasm-opt"))
            .args(["-Oz", "--converge", "--strip-debug", "--strip-producers"])
            .arg("--enable-bulk-memory")
            .arg("--enable-nontrapping-float-to-int")
            .arg("--enable-sign-ext")
            .arg("--enable-mutable-globals")
            .arg(&wasm_out)
            .arg("-o")
            .arg(&wasm_out))
    })
}

pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mf-build-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_failed_step_publishes_nothing_and_leaves_no_stamp() {
        let tmp = scratch("fail");
        let out = tmp.join("pkg");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("m_bg.wasm"), "old").unwrap();
        let stamp = out.join(".stamp");
        std::fs::write(&stamp, "nightly build-std").unwrap();
        let files = ["m.js".to_owned(), "m_bg.wasm".to_owned()];
        // wasm-bindgen wrote its files, then wasm-opt was missing.
        let r = stamped(&stamp, "nightly build-std", || {
            staged(&out, &files, |s| {
                std::fs::write(s.join("m.js"), "new").unwrap();
                std::fs::write(s.join("m_bg.wasm"), "unoptimised").unwrap();
                Err("wasm-opt: not found".into())
            })
        });
        assert_eq!(r, Err("wasm-opt: not found".into()));
        assert_eq!(std::fs::read_to_string(out.join("m_bg.wasm")).unwrap(), "old");
        assert!(!out.join("m.js").exists());
        assert!(!stamp.exists(), "no stamp: the next build starts over");
        assert!(!fresh(&stamp, "nightly build-std", &[]));
        assert!(!tmp.join(".pkg.staging").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_whole_build_publishes_its_files_and_a_stamp_of_how() {
        let tmp = scratch("ok");
        let out = tmp.join("pkg");
        let stamp = tmp.join("pkg.stamp");
        let files = ["m.js".to_owned(), "m_bg.wasm".to_owned()];
        stamped(&stamp, "nightly build-std", || {
            staged(&out, &files, |s| {
                std::fs::write(s.join("m.js"), "js").unwrap();
                std::fs::write(s.join("m_bg.wasm"), "wasm").unwrap();
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(out.join("m_bg.wasm")).unwrap(), "wasm");
        assert!(fresh(&stamp, "nightly build-std", &[]));
        assert!(!fresh(&stamp, "stable", &[]), "built on another toolchain: stale");
        // A step that says it succeeded but made nothing is a failure too.
        let r = stamped(&stamp, "nightly build-std", || staged(&out, &files, |_| Ok(())));
        assert_eq!(r, Err("the build made no m.js".into()));
        assert!(!stamp.exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn production_assets_leave_the_demo_out() {
        let tmp = std::env::temp_dir().join(format!("mf-assets-{}", std::process::id()));
        let www = tmp.join("www");
        for f in [
            "mf.js",
            "_headers",
            "dashboard/index.html",
            "demo/index.html",
            "demo/tarifs/index.html",
            "pkg/m.wasm",
            "pkg/.stamp",
        ] {
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
        assert!(!out.join("pkg/.stamp").exists(), "nor the build's stamp");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
