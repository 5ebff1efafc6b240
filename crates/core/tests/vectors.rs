//! The native side of the golden vectors: every file under `tests/vectors/`
//! at the workspace root, run through the suites of `src/vectors/`. They are
//! compiled here, outside the crate, so they reach the core only through its
//! public API — what the browser and the Worker call — and a suite that
//! needs a private item does not build.

#[allow(dead_code)]
#[path = "../src/vectors/mod.rs"]
mod vectors;

use std::path::{Path, PathBuf};

fn vector_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            vector_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[test]
fn golden_vectors_pass_natively() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let mut files = Vec::new();
    vector_files(&root, &mut files);
    assert!(!files.is_empty(), "no vector files under {}", root.display());
    let (mut passed, mut failed) = (0, 0);
    let mut report = String::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable vector file");
        let r = vectors::run_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        passed += r.passed;
        failed += r.failures.len();
        for f in &r.failures {
            report.push_str(&format!(
                "\n{} :: {}\n  input:    {}\n  expected: {}\n  actual:   {}\n",
                file.display(),
                f.name,
                f.input,
                f.expected,
                f.actual
            ));
        }
    }
    println!("vectors (native): {passed} cases passed, {failed} failed, {} files", files.len());
    assert_eq!(failed, 0, "{failed} vector case(s) failed:{report}");
}
