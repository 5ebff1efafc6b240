//! `cargo xtask dev [--port N]`: bootstrap, build, apply local migrations and
//! run `wrangler dev` on 127.0.0.1 (demo at `/`, dashboard at `/dashboard/`, collector under `/v1/`,
//! `GET /health`). State persists under `.wrangler/state`, with the demo site
//! seeded. The admin endpoints take `$MICROFUNNEL_ADMIN_TOKEN` (default
//! `dev-admin-token`, printed at start). Ctrl-C stops it.

use crate::build::{self, Mode};
use crate::util::root;
use crate::wrangler::{Dev, migrate, seed_demo};

pub fn run(args: &[String]) -> Result<(), String> {
    let mut port = 8787u16;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                port = it.next().and_then(|p| p.parse().ok()).ok_or("--port takes a port number")?;
            }
            other => return Err(format!("dev: unknown argument `{other}` (usage: cargo xtask dev [--port N])")),
        }
    }
    crate::bootstrap::run()?;
    build::all(Mode::Production)?;
    let persist = root().join(".wrangler/state");
    migrate(None, &persist)?;
    seed_demo(None, &persist)?;
    let token = std::env::var("MICROFUNNEL_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    let token = token.as_deref().unwrap_or("dev-admin-token");
    println!("\nmicrofunnel: http://127.0.0.1:{port}/  (demo)  ·  /dashboard/  ·  /health  ·  Ctrl-C to stop");
    println!("super-admin token (every site; give site owners their own token): {token}\n");
    // Local only: the demo is served by the collector itself, on whatever
    // port; the IP-hash key is a local one (the Worker refuses to run without).
    let vars = [
        ("ADMIN_TOKEN", token),
        ("LOOPBACK_ORIGINS", "allow"),
        ("IP_HASH_KEY", "dev-ip-hash-key-local-only"),
        ("SECRETS_KEY", "dev-secrets-key-local-only"),
    ];
    let mut dev = Dev::start(None, port, &persist, None, &vars)?;
    dev.wait()
}
