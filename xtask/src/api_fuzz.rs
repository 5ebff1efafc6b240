//! `cargo xtask api-fuzz`: Schemathesis (tools/requirements-fuzz.txt, in
//! target/venv) against `wrangler dev --env test` on fresh local state,
//! driven by the Worker's own OpenAPI document (`GET /v1/openapi.json`).
//! Not part of `cargo xtask test`.
//!
//! Every operation, every phase (examples, coverage, fuzzing, stateful),
//! with the admin token as bearer and a fuzz site's server key as the Basic
//! credential of Segment's endpoints; `site` parameters are that site, so
//! requests reach real data instead of stopping at a 404. The checks: no
//! server error, status codes, content types, headers and bodies as
//! documented, and schema-violating requests refused. Reports (JUnit,
//! NDJSON) go to target/api-fuzz/report; the exit status is Schemathesis's.

use crate::wrangler::{Dev, free_port, migrate, seed_demo};
use std::process::Command;
use std::time::Duration;

const ADMIN_TOKEN: &str = "test-admin-token";
const SUBJECT: &str = "fuzz-subject";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,negative_data_rejection";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut max_examples = "60".to_owned();
    let mut phases = "examples,coverage,fuzzing,stateful".to_owned();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--max-examples" => max_examples = value()?,
            "--phases" => phases = value()?,
            other => {
                return Err(format!(
                    "unknown option `{other}`\nusage: cargo xtask api-fuzz [--max-examples N] [--phases LIST]"
                ));
            }
        }
    }
    let python = crate::bootstrap::python_venv("requirements-fuzz.txt", &mut Vec::new())?;
    let schemathesis = python.with_file_name("schemathesis");
    crate::build::worker(crate::build::Mode::Test)?;
    let root = crate::util::root();
    let dir = root.join("target/api-fuzz");
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    migrate(Some("test"), &state)?;
    seed_demo(Some("test"), &state)?;
    let port = free_port()?;
    let mut dev = Dev::start(Some("test"), port, &state, Some(&dir.join("wrangler.log")), &[])?;
    dev.wait_healthy(Duration::from_secs(300))?;
    let base = dev.base_url.clone();
    let addr = base.trim_start_matches("http://").to_owned();

    // A site of its own, with limits no fuzzing rate reaches.
    let site = format!("fuzz-{}", std::process::id());
    let create = serde_json::json!({
        "id": site,
        "origins": ["https://fuzz.example"],
        "limits": {"ip_per_minute": 1_000_000, "site_per_minute": 10_000_000, "server_per_minute": 10_000_000},
        "conversions": [{"event": "Client Signed", "value_property": "revenue", "currency": "EUR"}],
    });
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, body) = crate::load::post(&addr, "/v1/sites", &create.to_string(), &[("Authorization", &auth)])?;
    if status != 201 {
        return Err(format!("creating the fuzz site: {status} {body}"));
    }
    let created: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("site answer: {e}"))?;
    let server_key = created["server_key"].as_str().ok_or("the site answer has no server_key")?;
    // A subject the subject operations find (until one of them erases it).
    let seed = serde_json::json!({"type": "track", "event": "Client Signed", "userId": SUBJECT,
                                  "properties": {"revenue": 100}});
    let (status, body) =
        crate::load::post(&addr, "/v1/track", &seed.to_string(), &[("Authorization", &basic(server_key))])?;
    if status != 200 {
        return Err(format!("seeding the fuzz subject: {status} {body}"));
    }
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by cargo xtask api-fuzz for one run.\n\
             [parameters]\n\"path.site\" = \"{site}\"\n\"query.site\" = \"{site}\"\n\n\
             [auth.openapi.bearer]\nbearer = \"{ADMIN_TOKEN}\"\n\n\
             [auth.openapi.basic]\nusername = \"{server_key}\"\npassword = \"\"\n\n\
             # A refusal is any 4xx that names the problem; 413 is ours for a body too large.\n\
             [checks.negative_data_rejection]\nexpected-statuses = [400, 401, 403, 404, 405, 409, 413, 415, 422, 429]\n\n\
             [[operations]]\ninclude-path-regex = \"^/v1/subjects/\\\\{{id\\\\}}\"\nparameters = {{ \"path.id\" = \"{SUBJECT}\" }}\n"
        ),
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;

    println!("api-fuzz: Schemathesis against {base} (site {site}; phases {phases}; {max_examples} examples/operation)");
    let report = dir.join("report");
    // Its cache (`.schemathesis/`) goes beside the reports, not in the tree.
    let status = Command::new(&schemathesis)
        .current_dir(&dir)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/v1/openapi.json"), "--url", &base])
        .args(["--checks", CHECKS, "--phases", &phases, "--max-examples", &max_examples])
        .args(["--workers", "1", "--seed", "20261204", "--request-timeout", "30"])
        .args(["--report", "junit,ndjson", "--report-dir"])
        .arg(&report)
        .args(["--suppress-health-check", "all", "--no-color"])
        .status()
        .map_err(|e| format!("running {}: {e}", schemathesis.display()))?;
    drop(dev);
    println!("api-fuzz: reports in {}", report.display());
    if status.success() { Ok(()) } else { Err(format!("Schemathesis found failures ({status})")) }
}

/// Segment's Basic credential: the key as user name, no password.
fn basic(key: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_is_base64_of_the_key_and_a_colon() {
        assert_eq!(super::basic("mfsk_test"), "Basic bWZza190ZXN0Og==");
        assert_eq!(super::basic("ab"), "Basic YWI6");
        assert_eq!(super::basic("a"), "Basic YTo=");
    }
}
