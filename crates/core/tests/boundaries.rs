//! Architecture invariants of `microfunnel-core`, enforced:
//! 1. it depends on no platform crate (read from `cargo metadata`'s resolved
//!    graph, for every target platform);
//! 2. its source performs no I/O and reads no clock or randomness;
//! 3. its modules import each other without a cycle;
//! 4. DEVELOPERS.md lists what each workspace crate really depends on, and
//!    ARCHITECTURE.md keeps its paragraphs short.

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

/// 3. No cycle between the core's modules: each file is a node, and an edge
///    goes from a file to the file that defines what it names through
///    `crate::…`, `super::…` or `self::…` (a facade's `pub use` followed to
///    the child that defines the item). Unit tests are left out; a facade's
///    own `mod`/`pub use` lines are structure, not dependencies.
#[test]
fn core_modules_have_no_cycle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() > 20, "the walk found the core's modules: {:?}", graph.keys());
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "module cycles in the core (each a strongly connected set):\n{}",
        cycles.iter().map(|c| c.join(" ↔ ")).collect::<Vec<_>>().join("\n")
    );
}

/// The graph of `src`: module path (`consent::state`) → the modules it uses.
fn module_graph(src: &Path) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(Vec<String>, bool, String)>) {
        for entry in std::fs::read_dir(dir).expect("src dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(base).expect("under src").with_extension("");
                let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                let facade = matches!(segs.last().map(String::as_str), Some("mod" | "lib"));
                if facade {
                    segs.pop();
                }
                out.push((segs, facade, strip_tests(&std::fs::read_to_string(&p).expect("source"))));
            }
        }
    }
    walk(src, src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _, _)| m.clone()).collect();
    // A facade's re-exports: (facade, name) → the module that holds it.
    let mut reexports: HashMap<(Vec<String>, String), Vec<String>> = HashMap::new();
    for (m, facade, text) in &files {
        if !facade {
            continue;
        }
        for (public, tree) in use_trees(text) {
            if !public {
                continue;
            }
            for path in expand(&tree) {
                let name = path.last().cloned().unwrap_or_default();
                let rooted = root(m, true, &path);
                if let Some(rooted) = rooted {
                    let (target, _) = walk_modules(&modules, &rooted);
                    reexports.insert((m.clone(), name), target);
                }
            }
        }
    }
    let resolve = |from: &[String], facade: bool, path: &[String]| -> Option<Vec<String>> {
        let rooted = root(from, facade, path)?;
        let (mut target, next) = walk_modules(&modules, &rooted);
        if let Some(next) = next
            && let Some(child) = reexports.get(&(target.clone(), next))
        {
            target = child.clone();
        }
        Some(target)
    };
    let mut graph = std::collections::BTreeMap::new();
    for (m, facade, text) in &files {
        let mut deps = BTreeSet::new();
        if !m.is_empty() {
            let mut paths: Vec<Vec<String>> = Vec::new();
            for (public, tree) in use_trees(text) {
                if !(*facade && public) {
                    paths.extend(expand(&tree));
                }
            }
            paths.extend(inline_paths(text));
            for p in paths {
                if let Some(t) = resolve(m, *facade, &p)
                    && &t != m
                    && !t.is_empty()
                {
                    deps.insert(t.join("::"));
                }
            }
        }
        graph.insert(if m.is_empty() { "crate".into() } else { m.join("::") }, deps);
    }
    graph
}

/// The source without its `#[cfg(test)]` modules and `//` comments.
fn strip_tests(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i64> = None;
    let mut pending_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        if let Some(depth) = skip_depth.as_mut() {
            *depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if code.trim() == "#[cfg(test)]" {
            pending_test = true;
            continue;
        }
        if pending_test && code.trim_start().starts_with("mod ") && code.contains('{') {
            let depth = code.matches('{').count() as i64 - code.matches('}').count() as i64;
            skip_depth = (depth > 0).then_some(depth);
            pending_test = false;
            continue;
        }
        pending_test = false;
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every `use` item's tree, with whether it is `pub` (of any kind).
fn use_trees(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let at_start = before.chars().next_back().is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}');
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if at_start {
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let public = before[line_start..].trim_start().starts_with("pub");
            out.push((public, after[..end].split_whitespace().collect::<Vec<_>>().join(" ")));
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out
}

/// `a::{b, c::{d as e, self}}` → `a::b`, `a::c::d`, `a::c`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    fn go(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head: Vec<String> =
                tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            let mut base = prefix.to_vec();
            base.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            go(&base, &inner[start..], out);
        } else {
            let name = tree.split(" as ").next().unwrap_or("").trim();
            if name.is_empty() || name == "*" {
                if !prefix.is_empty() {
                    out.push(prefix.to_vec());
                }
                return;
            }
            let mut p = prefix.to_vec();
            p.extend(name.split("::").map(|s| s.trim().to_owned()).filter(|s| s != "self"));
            out.push(p);
        }
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

/// `crate::…`, `super::…` and `self::…` paths written in the code itself.
fn inline_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut rest = text;
        while let Some(i) = rest.find(start) {
            let ok = rest[..i].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let tail = &rest[i..];
            let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
            if ok {
                out.push(tail[..end].split("::").filter(|s| !s.is_empty()).map(String::from).collect());
            }
            rest = &tail[end.max(1)..];
        }
    }
    out
}

/// A use path made absolute (module segments from the crate root), or `None`
/// for another crate's path.
fn root(from: &[String], facade: bool, path: &[String]) -> Option<Vec<String>> {
    let mut here: Vec<String> = from.to_vec();
    let mut segs = path.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            here.clear();
            segs.next();
        }
        Some("self") => {
            segs.next();
        }
        Some("super") => {
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                here.pop();
            }
        }
        // A facade's bare `child::Item` names its own child (2018 paths).
        Some(_) if facade => {}
        _ => return None,
    }
    let _ = facade;
    here.extend(segs.cloned());
    Some(here)
}

/// The deepest module a path walks through, and the segment after it.
fn walk_modules(modules: &BTreeSet<Vec<String>>, path: &[String]) -> (Vec<String>, Option<String>) {
    let mut m = Vec::new();
    for seg in path {
        let mut next = m.clone();
        next.push(seg.clone());
        if modules.contains(&next) {
            m = next;
        } else {
            return (m, Some(seg.clone()));
        }
    }
    (m, None)
}

/// The graph's strongly connected sets of more than one module (Tarjan).
fn cycles(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g std::collections::BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut set = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                set.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                t.out.push(set);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_cycle_finder_finds_cycles_and_resolves_reexports() {
    let g: std::collections::BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(cycles(&g), vec![vec!["a".to_owned(), "b".into(), "c".into()]]);
    assert_eq!(
        expand("crate::a::{b, c::{d as e, self}}"),
        vec![
            vec!["crate".to_owned(), "a".into(), "b".into()],
            vec!["crate".to_owned(), "a".into(), "c".into(), "d".into()],
            vec!["crate".to_owned(), "a".into(), "c".into()],
        ]
    );
}

/// DEVELOPERS.md's "Dependencies per crate" names exactly what each
/// workspace crate's manifest pulls in.
#[test]
fn developers_md_lists_each_crates_real_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut actual = std::collections::BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let names = |kind: Option<&str>| -> BTreeSet<String> {
            p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].as_str() == kind)
                .map(|d| d["name"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        actual.insert(p["name"].as_str().unwrap_or("").to_owned(), (names(None), names(Some("dev"))));
    }
    let text = std::fs::read_to_string(root.join("DEVELOPERS.md")).expect("DEVELOPERS.md");
    let section =
        text.split("## Dependencies per crate").nth(1).expect("the section").split("\n## ").next().unwrap_or("");
    let mut listed = std::collections::BTreeMap::new();
    for line in section.lines().filter_map(|l| l.strip_prefix("- `")) {
        let (name, rest) = line.split_once("`:").expect("- `crate`: deps");
        let (normal, dev) = rest.split_once("— [dev]").unwrap_or((rest, ""));
        // A name is the first word of each comma-separated item (notes follow it).
        let parse = |s: &str| -> BTreeSet<String> {
            s.split(',').filter_map(|i| i.split_whitespace().next()).map(str::to_owned).collect()
        };
        listed.insert(name.to_owned(), (parse(normal), parse(dev)));
    }
    assert_eq!(listed, actual, "DEVELOPERS.md's dependency list against cargo metadata (listed, actual)");
}

/// ARCHITECTURE.md stays a map, not a changelog: no paragraph or list item
/// over 600 characters.
#[test]
fn architecture_md_paragraphs_stay_short() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut long = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        fenced ^= line.starts_with("```");
        let chars = line.chars().count();
        if !fenced && chars > 600 {
            long.push(format!("line {}: {chars} characters", n + 1));
        }
    }
    assert!(long.is_empty(), "ARCHITECTURE.md paragraphs over 600 characters: {long:?}");
}
