//! Architecture invariants of `microfunnel-core`, enforced:
//! 1. it depends on no platform crate (read from `cargo metadata`'s resolved
//!    graph, for every target platform);
//! 2. its source performs no I/O and reads no clock or randomness.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

const PLATFORM_CRATES: &[&str] = &[
    "wasm-bindgen",
    "wasm-bindgen-futures",
    "js-sys",
    "web-sys",
    "worker",
    "worker-sys",
    "serde-wasm-bindgen",
    "getrandom",
    "rand",
    "tokio",
];

#[test]
fn core_depends_on_no_platform_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap_or(""), p["name"].as_str().unwrap_or("")))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve graph")
        .iter()
        .map(|n| (n["id"].as_str().unwrap_or(""), n))
        .collect();
    let core_id = packages
        .iter()
        .find(|(_, name)| **name == "microfunnel-core")
        .map(|(id, _)| *id)
        .expect("microfunnel-core in the workspace");

    // Walk normal (non-dev, non-build) dependencies transitively.
    let mut seen = BTreeSet::new();
    let mut stack = vec![core_id];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap_or(""));
            }
        }
    }
    let names: BTreeSet<&str> = seen.iter().map(|id| packages[id]).collect();
    let bad: Vec<&&str> = PLATFORM_CRATES.iter().filter(|c| names.contains(**c)).collect();
    assert!(bad.is_empty(), "microfunnel-core must not depend on {bad:?}; its graph: {names:?}");
    assert!(names.contains("serde"), "the walk found the core's real dependencies: {names:?}");
}

#[test]
fn core_source_does_no_io_and_reads_no_clock() {
    const FORBIDDEN: &[&str] = &[
        "std::fs",
        "std::net",
        "std::process",
        "std::env",
        "std::io::stdin",
        "std::thread",
        "SystemTime::now",
        "Instant::now",
        "OffsetDateTime::now",
        "println!",
        "eprintln!",
    ];
    fn walk(dir: &Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("src dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, hits);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source file");
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for f in FORBIDDEN {
                        if code.contains(f) {
                            hits.push(format!("{}:{}: {f}", p.display(), i + 1));
                        }
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut hits);
    assert!(hits.is_empty(), "I/O, clock or process access in the core:\n{}", hits.join("\n"));
}
