//! Embeds the golden vectors for the wasm test build: one
//! `#[wasm_bindgen_test]` per file under `tests/vectors/`, so a failure names
//! its file. Only `tests/vectors.rs` includes the generated code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../../tests/vectors");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut code = String::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let ident: String =
            rel.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let _ = writeln!(
            code,
            "#[wasm_bindgen_test::wasm_bindgen_test]\nfn vectors_{ident}() {{ check({rel:?}, include_str!({abs:?})); }}",
            abs = f.display()
        );
    }
    let _ = writeln!(code, "pub const FILE_COUNT: usize = {};", files.len());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("vector_tests.rs");
    if let Err(e) = std::fs::write(&out, code) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}
