//! `cargo xtask bench_browser` (arrives with the browser and edge work).

pub fn run(_args: &[String]) -> Result<(), String> {
    Err("not available yet".into())
}
