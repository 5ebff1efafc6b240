//! `microfunnel score` and `microfunnel rules check`, run as a user would.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microfunnel"))
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microfunnel-score-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn default_toml() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/rules/default.toml")
}

const STAMP: &str = r#""consent":{"analytics":true,"personalization":true,"marketing":false,"policy":1}"#;

fn events() -> String {
    [
        format!(
            r#"{{"type":"page","messageId":"00000000-0000-4000-8000-000000000001","anonymousId":"v1","timestamp":"2026-03-02T10:00:00Z","context":{{"page":{{"path":"/pricing"}}}},{STAMP}}}"#
        ),
        String::new(),
        format!(
            r#"{{"type":"track","event":"Element Clicked","properties":{{"mf_element":"buy"}},"messageId":"00000000-0000-4000-8000-000000000002","anonymousId":"v1","timestamp":"2026-03-02T10:05:00Z",{STAMP}}}"#
        ),
        // No consent stamp: ignored.
        r#"{"type":"track","event":"offline.meeting_request","messageId":"00000000-0000-4000-8000-000000000003","anonymousId":"v1","timestamp":"2026-03-02T10:06:00Z"}"#.to_owned(),
        format!(
            r#"{{"type":"identify","traits":{{"role":"CEO"}},"messageId":"00000000-0000-4000-8000-000000000004","userId":"u1","timestamp":"2026-03-02T10:07:00Z",{STAMP}}}"#
        ),
    ]
    .join("\n")
}

#[test]
fn rules_check_accepts_the_default_file() {
    let o = bin().args(["rules", "check"]).arg(default_toml()).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).contains(
            "ok (version default-2, 25 actions, tiers cold, warm, hot, very_hot, stages lead → qualified → client)"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn rules_check_names_the_line_field_and_rule() {
    let text = std::fs::read_to_string(default_toml())
        .unwrap()
        .replace("points = 15\nfrequency = \"once_per_session\"", "points = 15000\nfrequency = \"twice\"");
    let line = text.lines().position(|l| l == "points = 15000").unwrap() + 1;
    let path = temp("bad.toml", &text);
    let o = bin().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let p = path.display();
    assert!(
        out.contains(&format!("{p}:{line}: actions.web.pricing_view.points: must be an integer from -1000 to 1000")),
        "{out}"
    );
    assert!(out.contains(&format!("{p}:{}: actions.web.pricing_view.frequency: must be", line + 1)), "{out}");
}

#[test]
fn rules_check_reads_json_by_extension() {
    let path = temp("rules.json", r#"{"version":"j","decay":{"kind":"none"},"tiers":{"cold":-1},"actions":{}}"#);
    let o = bin().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("tiers.cold: must be an integer from 0 to 100000"), "{}", stdout(&o));
}

#[test]
fn score_prints_the_explained_score() {
    let path = temp("events.ndjson", &events());
    let o = bin().args(["score", "--events"]).arg(&path).args(["--at", "2026-03-10T10:05:00Z"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for key in ["score", "engagement", "fit", "tier", "drivers", "next_tier_hint", "rules_version"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    // 15 + 25 = 40, then 8 days after 10:05: one week, −2. No fit rules by default.
    assert_eq!(v["score"], 38);
    assert_eq!(v["tier"], "warm");
    assert_eq!(v["rules_version"], "default-2");
    assert_eq!(v["drivers"][2]["reason"], "no_consent");
}

#[test]
fn score_uses_a_rule_file() {
    let mut rules = std::fs::read_to_string(default_toml()).unwrap();
    rules = rules.replace("version = \"default-2\"", "version = \"site-7\"");
    rules.push_str("\n[fit.decision_maker]\ntrait = \"role\"\nin = [\"ceo\"]\npoints = 20\n");
    let rules = temp("site.toml", &rules);
    let events = temp("events2.ndjson", &events());
    let o = bin()
        .args(["score", "--events"])
        .arg(&events)
        .arg("--rules")
        .arg(&rules)
        .args(["--at", "2026-03-02T10:07:00Z"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["engagement"].clone(), v["fit"].clone(), v["score"].clone()), (40.into(), 20.into(), 60.into()));
    assert_eq!(v["tier"], "hot");
    assert_eq!(v["rules_version"], "site-7");
}

#[test]
fn score_refuses_a_bad_event_line_or_time() {
    let path = temp("bad.ndjson", &format!("{}\n{{\"type\":\"page\"}}\n", events().lines().next().unwrap()));
    let o = bin().args(["score", "--events"]).arg(&path).args(["--at", "2026-03-02T10:00:00Z"]).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:2: messageId: is required", path.display())), "{err}");

    let o = bin().args(["score", "--events"]).arg(&path).args(["--at", "yesterday"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--at: must be an RFC 3339 date-time"));
}

#[test]
fn a_malformed_event_line_names_the_file_line_and_field() {
    let lines: Vec<String> = events().lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
    for (third, field_problem) in [
        ("{oops", "event: not JSON: key must be a string at column 2"),
        (r#"{"type":"page"}"#, "messageId: is required"),
        (
            r#"{"type":"page","messageId":"00000000-0000-4000-8000-000000000009","anonymousId":"v1","timestamp":"soon"}"#,
            "timestamp: must be an RFC 3339 date-time",
        ),
        ("[]", "event: must be a JSON object"),
    ] {
        let path = temp("bad-line3.ndjson", &format!("{}\n{}\n{third}\n{}\n", lines[0], lines[1], lines[2]));
        let o = bin().args(["score", "--at", "2026-03-02T10:07:00Z", "--events"]).arg(&path).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end(), format!("error: {}:3: {field_problem}", path.display()), "line 3: {third}");
    }
    // Not UTF-8 on line 3: the column of the first bad byte.
    let path = temp("latin1.ndjson", "");
    let mut bytes = format!("{}\n{}\n", lines[0], lines[1]).into_bytes();
    bytes.extend(b"{\"type\":\"pag\xe9\"}\n");
    std::fs::write(&path, bytes).unwrap();
    let o = bin().args(["score", "--at", "2026-03-02T10:07:00Z", "--events"]).arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end(), format!("error: {}:3: event: not UTF-8 at column 13", path.display()));
}

#[test]
fn rules_check_prints_every_problem_as_file_line_field_problem() {
    // TOML: a syntax error, and a top-level key missing (its table is the file: line 1).
    let path = temp("syntax.toml", "version = \"x\"\n[decay]\nkind = = \"none\"\n");
    let o = bin().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with(&format!("{}:3: (document): invalid TOML: ", path.display())), "{out}");
    let path = temp("noversion.toml", "[decay]\nkind = \"none\"\n[tiers]\ncold = 0\n[actions]\n");
    let o = bin().args(["rules", "check"]).arg(&path).output().unwrap();
    let p = path.display();
    assert_eq!(
        stdout(&o).trim_end(),
        format!("{p}:1: version: is required\n{p}:5: actions: must define at least one action")
    );
    // JSON: the line of the field, found in the file (the core gives the path only).
    let path = temp(
        "lines.json",
        "{\n  \"version\": \"j\",\n  \"tiers\": {\"cold\": -1},\n  \"decay\": {\n    \"kind\": \"none\"\n  },\n  \"actions\": {},\n  \"colour\": 1\n}\n",
    );
    let o = bin().args(["rules", "check"]).arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let p = path.display();
    assert_eq!(
        stdout(&o).trim_end(),
        format!(
            "{p}:3: tiers.cold: must be an integer from 0 to 100000\n\
             {p}:7: actions: must define at least one action\n\
             {p}:8: colour: unknown field (expected one of: version, session_timeout_minutes, decay, velocity, tiers, stages, actions, fit)"
        )
    );
    // The same lines when another command loads the file.
    let events = temp("events-lines.ndjson", &events());
    let o = bin().args(["score", "--events"]).arg(&events).arg("--rules").arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("{p}:3: tiers.cold: must be")), "{o:?}");
    // Conversion definitions: the line of the definition at fault.
    let conv = temp(
        "conv-lines.json",
        "[\n  {\"event\": \"Lead\"},\n  {\"event\": \"Client Signed\",\n   \"stage\": \"customer\"}\n]\n",
    );
    let o = bin().args(["rules", "check"]).arg(default_toml()).arg("--conversions").arg(&conv).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stdout(&o).starts_with(&format!("{}:4: conversions[1].stage: stage `customer` is not one of", conv.display())),
        "{}",
        stdout(&o)
    );
}

#[test]
fn score_with_a_bad_rule_file_fails_with_its_errors() {
    let rules = temp(
        "broken.toml",
        "version = \"x\"\n[decay]\nkind = \"none\"\n[tiers]\ncold = 0\n[actions.web.a]\npoints = 1\n",
    );
    let events = temp("events3.ndjson", &events());
    let o = bin().args(["score", "--events"]).arg(&events).arg("--rules").arg(&rules).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:6: actions.web.a.frequency: is required", rules.display())), "{err}");
}

#[test]
fn events_without_consent_are_counted_and_can_be_assumed() {
    let path = temp("events3.ndjson", &events());
    let plain = bin().args(["score", "--events"]).arg(&path).args(["--at", "2026-03-02T10:07:00Z"]).output().unwrap();
    assert!(plain.status.success(), "{plain:?}");
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("1 of 4 events carry no consent stamp"), "{err}");
    assert!(err.contains("--assume-consent"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&plain)).unwrap();
    assert_eq!(v["engagement"], 40);
    assert!(v.get("assumed_consent").is_none());

    let assumed = bin()
        .args(["score", "--events"])
        .arg(&path)
        .args(["--at", "2026-03-02T10:07:00Z", "--assume-consent", "analytics,personalization"])
        .output()
        .unwrap();
    assert!(assumed.status.success(), "{assumed:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&assumed)).unwrap();
    // The unstamped meeting request (+40) now counts.
    assert_eq!(v["engagement"], 80);
    assert_eq!(v["assumed_consent"], serde_json::json!({"purposes": ["analytics", "personalization"], "events": 1}));
    assert!(!String::from_utf8_lossy(&assumed.stderr).contains("warning"));

    // Assuming only analytics does not make the event scoreable.
    let analytics = bin()
        .args(["score", "--events"])
        .arg(&path)
        .args(["--at", "2026-03-02T10:07:00Z", "--assume-consent", "analytics"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&analytics)).unwrap();
    assert_eq!(v["engagement"], 40);

    let bad = bin().args(["score", "--events"]).arg(&path).args(["--assume-consent", "everything"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("everything"));
}

const CONVERSIONS: &str = r#"[{"event": "Contact Submitted"}, {"event": "Client Signed", "inherits": "Contact Submitted", "stage": "client"}]"#;

fn lifecycle_events() -> String {
    [
        format!(
            r#"{{"type":"page","messageId":"00000000-0000-4000-8000-000000000011","anonymousId":"v1","timestamp":"2026-03-02T10:00:00Z","context":{{"page":{{"path":"/pricing"}}}},{STAMP}}}"#
        ),
        format!(
            r#"{{"type":"track","event":"Contact Submitted","messageId":"00000000-0000-4000-8000-000000000012","anonymousId":"v1","timestamp":"2026-03-02T10:05:00Z",{STAMP}}}"#
        ),
        format!(
            r#"{{"type":"track","event":"Client Signed","messageId":"00000000-0000-4000-8000-000000000013","userId":"u1","timestamp":"2026-03-05T16:00:00Z",{STAMP}}}"#
        ),
    ]
    .join("\n")
}

#[test]
fn score_shows_the_stage_and_its_history_with_the_sites_conversions() {
    let events = temp("lifecycle.ndjson", &lifecycle_events());
    let conv = temp("conversions.json", CONVERSIONS);
    let o = bin()
        .args(["score", "--at", "2026-03-06T00:00:00Z", "--events"])
        .arg(&events)
        .arg("--conversions")
        .arg(&conv)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stage"], "client");
    let moves: Vec<(String, String)> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["to"].as_str().unwrap().to_owned(), c["by"]["event"].as_str().unwrap_or("score").to_owned()))
        .collect();
    assert_eq!(
        moves,
        [("lead".to_owned(), "Contact Submitted".to_owned()), ("client".to_owned(), "Client Signed".to_owned())]
    );
    // Without the conversions, stages come from the score alone (15 < 51: none), and the CLI says so.
    let o = bin().args(["score", "--at", "2026-03-06T00:00:00Z", "--events"]).arg(&events).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stage"], serde_json::Value::Null);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--conversions"), "{o:?}");
}

#[test]
fn a_conversion_naming_a_stage_the_rules_lack_is_refused_with_its_field() {
    let conv = temp("bad-conversions.json", r#"[{"event": "Client Signed", "stage": "customer"}]"#);
    let o = bin().args(["rules", "check"]).arg(default_toml()).arg("--conversions").arg(&conv).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stdout(&o).contains(
            "conversions[0].stage: stage `customer` is not one of the rules' stages (lead, qualified, client)"
        ),
        "{}",
        stdout(&o)
    );
    let events = temp("lifecycle2.ndjson", &lifecycle_events());
    let o = bin().args(["score", "--events"]).arg(&events).arg("--conversions").arg(&conv).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("conversions[0].stage"), "{o:?}");
}

#[test]
fn rules_check_names_stages_out_of_order_at_their_line() {
    let text = std::fs::read_to_string(default_toml())
        .unwrap()
        .replace("min_score = 51", "min_score = 51\n[[stages]]\nid = \"engaged\"\nlabel = \"Engaged\"\nmin_score = 20");
    let file = temp("stages-out-of-order.toml", &text);
    let o = bin().args(["rules", "check"]).arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let line = text.lines().position(|l| l.starts_with("min_score = 20")).unwrap() + 1;
    assert!(
        stdout(&o).contains(&format!(
            ":{line}: stages[2].min_score: stages out of order: 20 is not above the min_score of `qualified` (51)"
        )),
        "{}",
        stdout(&o)
    );
}
