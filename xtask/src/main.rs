//! `cargo xtask …`: the project's automation — bootstrap, build, dev, test,
//! benchmarks. Plain Rust over `std::process::Command`, so a fresh machine
//! needs nothing but cargo to start.

mod api_fuzz;
mod bench_attribution;
mod bench_browser;
mod bootstrap;
mod build;
mod clv;
mod dev;
mod fuzz;
mod load;
mod size;
mod test;
mod util;
mod wrangler;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

  bootstrap            install what the build and tests need (idempotent)
  build                build the browser wasm (www/pkg) and the Worker
  build-worker [--test]  build the Worker only (wrangler's build command)
  dev [--port N]       bootstrap, build, migrate and run `wrangler dev` (default 127.0.0.1:8787)
  test                 every check and test suite; ends with `N passed, N failed`
  e2e [NAME…]          build, then only the end-to-end suites whose file names contain a NAME
  size [--probe]       the browser size budget (loader, glue, wasm; gzip), fails above budget;
                       --probe: the core's share of the module, built alone (figures only)
  bench-attribution    microfunnel vs ChannelAttribution on ≥1M generated journeys (not in `test`)
  bench-clv            microfunnel clv vs lifetimes on 1M synthetic customers (not in `test`)
  bench-browser        main-thread cost of loader, init and capture in headless Chromium (not in `test`)
  fuzz [--minutes N] [TARGET…]  cargo-fuzz over every decoder of untrusted input, N minutes each (default 1; not in `test`)
  api-fuzz [--max-examples N] [--phases LIST]  Schemathesis over every operation of the Worker's OpenAPI (not in `test`)
  load                 concurrent load against local workerd: throughput, latency, 0 lost / 0 duplicated (not in `test`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => {
            eprint!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd {
        "bootstrap" => bootstrap::run(),
        "build" => bootstrap::run().and_then(|()| build::all(build::Mode::Production)),
        "build-worker" => {
            build::worker(if rest.iter().any(|a| a == "--test") { build::Mode::Test } else { build::Mode::Production })
        }
        "dev" => dev::run(rest),
        "test" => test::run(),
        "e2e" => test::e2e_only(rest),
        "size" => size::run(rest),
        "bench-attribution" => bench_attribution::run(rest),
        "bench-clv" => clv::bench(rest),
        "bench-browser" => bench_browser::run(rest),
        "load" => load::run(rest),
        "api-fuzz" => api_fuzz::run(rest),
        "fuzz" => fuzz::run_cmd(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
