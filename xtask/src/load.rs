//! `cargo xtask load`: concurrent load against local workerd (not part of
//! `cargo xtask test`).
//!
//! Starts `wrangler dev --env test` on fresh local state (or uses `--url` +
//! `--state` of a running one), creates a site through the admin API, then
//! `--concurrency` clients send `--batches` batches of `--events` events each,
//! spread over `--visitors` visitors (so the visitor Durable Objects see
//! contention). Every `--replay`-th batch is sent twice, as a client retry
//! would, and any failed request is retried with the same events. At the end
//! D1 must hold exactly batches × events events — 0 lost, 0 duplicated — and
//! the visitor objects' ledgers must add up to the same number. Every fourth
//! batch ends with a conversion ("Lead Submitted"), attributed at once by the
//! visitor's object: each must be stored exactly once with its credits.
//! Prints throughput, p50/p99 latency and TTA (receipt → credits stored)
//! p50/p99.

use crate::wrangler::{Dev, free_port, migrate, wrangler};
use microfunnel_core::Timestamp;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ADMIN_TOKEN: &str = "test-admin-token";
const ORIGIN: &str = "https://load.example";

struct Options {
    batches: usize,
    events: usize,
    concurrency: usize,
    visitors: usize,
    replay: usize,
    url: Option<String>,
    state: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options { batches: 200, events: 20, concurrency: 16, visitors: 64, replay: 10, url: None, state: None };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--batches" => o.batches = number(value()?)?,
            "--events" => o.events = number(value()?)?,
            "--concurrency" => o.concurrency = number(value()?)?,
            "--visitors" => o.visitors = number(value()?)?,
            "--replay" => o.replay = number(value()?)?,
            "--url" => o.url = Some(value()?),
            "--state" => o.state = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "unknown option `{other}`\nusage: cargo xtask load [--batches N] [--events K] [--concurrency C] \
                     [--visitors V] [--replay R] [--url http://127.0.0.1:PORT --state DIR]"
                ));
            }
        }
    }
    if o.batches == 0 || o.concurrency == 0 || o.visitors == 0 || !(1..=100).contains(&o.events) {
        return Err("--batches, --concurrency and --visitors must be ≥ 1; --events 1 to 100".into());
    }
    if o.url.is_some() != o.state.is_some() {
        return Err("--url and --state go together (the state directory is read to count what was stored)".into());
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let (_dev, base, state) = match (&o.url, &o.state) {
        (Some(url), Some(state)) => (None, url.trim_end_matches('/').to_owned(), state.clone()),
        _ => {
            crate::build::worker(crate::build::Mode::Test)?;
            let state = crate::util::root().join("target/load/state");
            let _ = std::fs::remove_dir_all(&state);
            migrate(Some("test"), &state)?;
            let port = free_port()?;
            let log = crate::util::root().join("target/load/wrangler.log");
            let mut dev = Dev::start(Some("test"), port, &state, Some(&log), &[])?;
            dev.wait_healthy(Duration::from_secs(300))?;
            let base = dev.base_url.clone();
            (Some(dev), base, state)
        }
    };
    let addr = base.trim_start_matches("http://").to_owned();
    let site = format!("load-{}", &random_hex()[..8]);
    let create = json!({
        "id": site,
        "origins": [ORIGIN],
        "limits": {"ip_per_minute": 1_000_000, "site_per_minute": 10_000_000},
        "conversions": [{"event": CONVERSION, "default_value_minor": 10_000, "currency": "EUR"}],
    });
    let (status, body) =
        post(&addr, "/v1/sites", &create.to_string(), &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))])?;
    if status != 201 {
        return Err(format!("creating the load site: {status} {body}"));
    }

    // Every batch's body is fixed up front: a retry resends the same events.
    let run_id = random_hex();
    let bodies: Vec<String> = (0..o.batches).map(|b| batch_body(&site, &run_id, b, o.events, o.visitors)).collect();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(o.batches * 2));
    let totals = Mutex::new((0usize, 0usize, 0usize)); // accepted, duplicates, retries
    let errors = Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.concurrency {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let sends = if o.replay > 0 && i.is_multiple_of(o.replay) { 2 } else { 1 };
                    for _ in 0..sends {
                        match send_with_retry(&addr, body, &latencies) {
                            Ok((accepted, duplicates, retries)) => {
                                if let Ok(mut t) = totals.lock() {
                                    t.0 += accepted;
                                    t.1 += duplicates;
                                    t.2 += retries;
                                }
                            }
                            Err(e) => {
                                if let Ok(mut errs) = errors.lock() {
                                    errs.push(format!("batch {i}: {e}"));
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.into_inner().map_err(|e| e.to_string())?;
    let (accepted, duplicates, retries) = totals.into_inner().map_err(|e| e.to_string())?;
    let mut lat = latencies.into_inner().map_err(|e| e.to_string())?;
    lat.sort_by(f64::total_cmp);
    let expected = o.batches * o.events;

    let stored = count(&state, &format!("SELECT COUNT(*) AS n FROM events WHERE site_id = '{site}'"))?;
    let distinct =
        count(&state, &format!("SELECT COUNT(DISTINCT message_id) AS n FROM events WHERE site_id = '{site}'"))?;
    let ledgers =
        count(&state, &format!("SELECT COALESCE(SUM(events), 0) AS n FROM visitors WHERE site_id = '{site}'"))?;

    println!(
        "load: {} batches × {} events, {} clients, {} visitors, every {}th batch replayed",
        o.batches, o.events, o.concurrency, o.visitors, o.replay
    );
    println!("load: {} requests ({} retried after an error) in {elapsed:.2} s", lat.len(), retries);
    println!(
        "load: throughput {:.0} events/s, {:.1} requests/s",
        expected as f64 / elapsed,
        lat.len() as f64 / elapsed
    );
    println!(
        "load: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0.0)
    );
    println!("load: responses: {accepted} accepted, {duplicates} duplicates");
    let lost = expected.saturating_sub(distinct);
    let duplicated = stored.saturating_sub(distinct) + distinct.saturating_sub(expected);
    println!(
        "load: stored {stored} events (expected {expected}): {lost} lost, {duplicated} duplicated; visitor ledgers hold {ledgers}"
    );
    if !errors.is_empty() {
        return Err(format!("{} batches failed:\n{}", errors.len(), errors.join("\n")));
    }
    if stored != expected || distinct != expected || accepted != expected || ledgers != expected {
        return Err(format!(
            "exactly-once violated: stored {stored}, distinct {distinct}, accepted {accepted}, ledgers {ledgers}, expected {expected}"
        ));
    }
    let expected_conv = (0..o.batches).filter(|b| converts(*b)).count();
    let conversions = count(&state, &format!("SELECT COUNT(*) AS n FROM conversions WHERE site_id = '{site}'"))?;
    let mut tta = values(&state, &format!("SELECT tta_ms AS v FROM conversions WHERE site_id = '{site}'"))?;
    tta.sort_by(f64::total_cmp);
    println!(
        "load: {conversions} conversions attributed (expected {expected_conv}); TTA p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&tta, 50.0),
        percentile(&tta, 99.0),
        tta.last().copied().unwrap_or(0.0)
    );
    if conversions != expected_conv {
        return Err(format!("conversions: stored {conversions}, expected {expected_conv}"));
    }
    println!("load: ok — 0 lost, 0 duplicated");
    Ok(())
}

/// Sends one batch until the Worker answers 200 (a 429/5xx or a broken
/// connection is retried with the same body); returns accepted, duplicates
/// and how many retries it took.
fn send_with_retry(addr: &str, body: &str, latencies: &Mutex<Vec<f64>>) -> Result<(usize, usize, usize), String> {
    let mut last = String::new();
    for attempt in 0..8 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
        }
        let t = Instant::now();
        let result = post(addr, "/v1/batch", body, &[("Origin", ORIGIN), ("Content-Type", "text/plain")]);
        if let Ok(mut l) = latencies.lock() {
            l.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        match result {
            Ok((200, text)) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| format!("bad response {e}: {text}"))?;
                let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
                return Ok((n("accepted"), n("duplicates"), attempt));
            }
            Ok((status, text)) if status == 429 || status >= 500 => last = format!("{status} {text}"),
            Ok((status, text)) => return Err(format!("{status} {text}")),
            Err(e) => last = e,
        }
    }
    Err(format!("gave up after 8 attempts: {last}"))
}

fn batch_body(site: &str, run_id: &str, batch: usize, events: usize, visitors: usize) -> String {
    let visitor = format!("{}-{:04x}-4000-8000-{:012x}", &run_id[..8], batch % visitors, batch % visitors);
    let paths = ["/", "/pricing", "/blog/guide", "/contact"];
    let now = now_rfc3339();
    let items: Vec<Value> = (0..events)
        .map(|e| {
            let n = batch * 1000 + e;
            if e + 1 == events && converts(batch) {
                return json!({
                    "type": "track",
                    "event": CONVERSION,
                    "messageId": format!("{}-{:04x}-4{:03x}-8{:03x}-{:012x}", &run_id[..8], (n >> 24) & 0xffff, (n >> 12) & 0xfff, n & 0xfff, n),
                    "anonymousId": visitor,
                    "timestamp": now,
                    "consent": {"analytics": true, "personalization": true, "marketing": false, "policy": 1},
                });
            }
            json!({
                "type": "page",
                "messageId": format!("{}-{:04x}-4{:03x}-8{:03x}-{:012x}", &run_id[..8], (n >> 24) & 0xffff, (n >> 12) & 0xfff, n & 0xfff, n),
                "anonymousId": visitor,
                "timestamp": now,
                "context": {"page": {"path": paths.get(e % paths.len()).copied().unwrap_or("/")}},
                "consent": {"analytics": true, "personalization": true, "marketing": false, "policy": 1},
            })
        })
        .collect();
    json!({"site": site, "batch": items}).to_string()
}

/// A minimal HTTP/1.1 POST over a fresh connection (`Connection: close`).
pub(crate) fn post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let mut req =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    // Read until the response is complete (Content-Length or the last chunk):
    // the dev server may keep the socket open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(done) = complete(&raw) {
            raw.truncate(done);
            break;
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no HTTP header in the response")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status in the response")?;
    Ok((status, if is_chunked(head) { dechunk(rest) } else { rest.to_owned() }))
}

fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    })
}

/// The length of a complete response in `raw`, if it is complete.
fn complete(raw: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(raw).ok()?;
    let end = text.find("\r\n\r\n")? + 4;
    let head = text.get(..end)?;
    if is_chunked(head) {
        return text
            .get(end..)?
            .contains("\r\n0\r\n\r\n")
            .then_some(raw.len())
            .or_else(|| text.get(end..).filter(|b| b.starts_with("0\r\n\r\n")).map(|_| raw.len()));
    }
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    })?;
    (raw.len() >= end + len).then_some(end + len)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or_default());
        s = rest.get(n..).unwrap_or_default().trim_start_matches("\r\n");
    }
    out
}

/// One query on the local D1, as wrangler's JSON answer.
fn query(state: &std::path::Path, sql: &str) -> Result<Value, String> {
    let out = wrangler()
        .args(["d1", "execute", "DB", "--local", "--env", "test", "--json", "--persist-to"])
        .arg(state)
        .args(["--command", sql])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("wrangler d1 execute: {e}"))?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("wrangler d1 execute: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn count(state: &std::path::Path, sql: &str) -> Result<usize, String> {
    let v = query(state, sql)?;
    v.pointer("/0/results/0/n").and_then(Value::as_u64).map(|n| n as usize).ok_or_else(|| format!("no count in {v}"))
}

/// The conversion event of the load site.
const CONVERSION: &str = "Lead Submitted";

/// Every fourth batch ends with a conversion.
fn converts(batch: usize) -> bool {
    batch % 4 == 3
}

/// The `v` column of every row of a query on the local D1.
fn values(state: &std::path::Path, sql: &str) -> Result<Vec<f64>, String> {
    Ok(query(state, sql)?
        .pointer("/0/results")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().filter_map(|r| r.get("v").and_then(Value::as_f64)).collect())
        .unwrap_or_default())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    microfunnel_core::attribution::percentile(sorted, p).unwrap_or(0.0)
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    bytes.iter().enumerate().map(|(i, b)| format!("{:02x}", b ^ (nanos >> (i % 8 * 8)) as u8)).collect()
}

/// Now as RFC 3339 UTC with milliseconds, written by the core like every timestamp.
fn now_rfc3339() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp::from_millis(ms).map(Timestamp::to_rfc3339).unwrap_or_default()
}
