//! Starting and stopping `wrangler dev` (workerd with local D1) for dev and
//! for the end-to-end suites.

use crate::util::{node_bin, root, run, tool_env};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn wrangler() -> Command {
    let mut c = Command::new(node_bin("wrangler"));
    c.current_dir(root());
    tool_env(&mut c);
    c
}

/// `wrangler d1 migrations apply DB --local` into a persistence directory.
pub fn migrate(env: Option<&str>, persist: &Path) -> Result<(), String> {
    let mut cmd = wrangler();
    cmd.args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"]).arg(persist);
    if let Some(e) = env {
        cmd.args(["--env", e]);
    }
    run(cmd.stdin(Stdio::null()))
}

/// Seeds the demo site (`migrations/seed/demo.sql`, idempotent) after the migrations.
pub fn seed_demo(env: Option<&str>, persist: &Path) -> Result<(), String> {
    let mut cmd = wrangler();
    cmd.args(["d1", "execute", "DB", "--local", "--file", "migrations/seed/demo.sql", "--persist-to"]).arg(persist);
    if let Some(e) = env {
        cmd.args(["--env", e]);
    }
    run(cmd.stdin(Stdio::null()))?;
    // The seed writes the sites row itself: its origin index follows, as the
    // API keeps it (the seed also runs on schemas older than that table).
    let mut index = wrangler();
    index
        .args(["d1", "execute", "DB", "--local", "--persist-to"])
        .arg(persist)
        .args(["--command", "INSERT OR IGNORE INTO site_origins (origin, site_id) SELECT json_each.value, sites.id FROM sites, json_each(sites.origins)"]);
    if let Some(e) = env {
        index.args(["--env", e]);
    }
    run(index.stdin(Stdio::null()))
}

/// A running `wrangler dev`; dropped → stopped with everything it started.
pub struct Dev {
    child: Child,
    own_group: bool,
    pub base_url: String,
}

impl Dev {
    /// Starts `wrangler dev`. With `log`, output goes to that file and the
    /// process gets its own process group, so dropping `Dev` stops workerd
    /// too; without (interactive `cargo xtask dev`), it shares the terminal's
    /// group so Ctrl-C reaches it directly.
    /// `vars` are `--var NAME:VALUE` bindings for this run only.
    pub fn start(
        env: Option<&str>,
        port: u16,
        persist: &Path,
        log: Option<&Path>,
        vars: &[(&str, &str)],
    ) -> Result<Dev, String> {
        let mut cmd = wrangler();
        cmd.args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string(), "--persist-to"])
            .arg(persist)
            .args(["--show-interactive-dev-session=false", "--log-level", "warn"])
            .stdin(Stdio::null());
        for (name, value) in vars {
            cmd.arg("--var").arg(format!("{name}:{value}"));
        }
        match env {
            Some(e) => cmd.args(["--env", e]),
            // Local development serves the demo site, which deployments leave out.
            None => cmd.args(["--assets", "www"]),
        };
        if let Some(path) = log {
            cmd.process_group(0);
            let f = std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
            let f2 = f.try_clone().map_err(|e| e.to_string())?;
            cmd.stdout(f).stderr(f2);
        }
        let child = cmd.spawn().map_err(|e| format!("cannot start wrangler dev: {e}"))?;
        Ok(Dev { child, own_group: log.is_some(), base_url: format!("http://127.0.0.1:{port}") })
    }

    /// Waits until `GET /health` answers 200.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        let addr = self.base_url.trim_start_matches("http://").to_owned();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("wrangler dev exited early ({status})"));
            }
            if http_status(&addr, "/health") == Some(200) {
                println!("wrangler dev: healthy at {} after {:.1} s", self.base_url, started.elapsed().as_secs_f64());
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(format!("wrangler dev not healthy after {} s", timeout.as_secs()))
    }

    pub fn wait(&mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("wrangler dev exited ({status})")) }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if !self.own_group {
            // Interactive: the terminal's Ctrl-C already reached it.
            let _ = self.child.wait();
            return;
        }
        let pgid = self.child.id().to_string();
        signal_group("TERM", &pgid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group("KILL", &pgid);
        let _ = self.child.wait();
    }
}

/// Signals a whole process group (`kill -s SIG -- -PGID`; procps' kill does
/// not take a negative pid right after `-SIG`).
fn signal_group(signal: &str, pgid: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The status code of a plain HTTP/1.1 GET, or None if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(buf.get(..n)?).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
