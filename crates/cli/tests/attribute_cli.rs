//! `microfunnel attribute` end to end: ChannelAttribution files in, its
//! column names out, a malformed line reported as `FILE:LINE: FIELD: PROBLEM`,
//! a flag value outside its choices refused by clap.

use std::io::Write;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microfunnel")).arg("attribute").args(args).output().expect("runs")
}

fn file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mf-attr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

const CA: &str = "path;total_conversions;total_conversion_value;total_null\n\
A > B > C;2;30.5;1\nA;1;10;3\nB > A > B;3;12;0\nC > C;0;0;2\n D >C ;1;7.25;1\n";

#[test]
fn reads_channelattribution_semicolon_csv_and_writes_its_columns() {
    let p = file("ca.csv", CA);
    let out = stdout(&run(&[p.to_str().unwrap(), "--model", "first"]));
    assert_eq!(out, "channel_name,total_conversions,total_conversion_value\nA,3,40.5\nB,3,12\nC,0,0\nD,1,7.25\n");
}

#[test]
fn comma_csv_without_value_column_omits_value() {
    let p = file("comma.csv", "total_conversions,path\n2,A > B\n1,B\n");
    let out = stdout(&run(&[p.to_str().unwrap(), "--model", "linear"]));
    assert_eq!(out, "channel_name,total_conversions\nA,1\nB,2\n");
}

#[test]
fn all_models_write_one_pair_per_model() {
    let p = file("all.csv", CA);
    let out = stdout(&run(&[p.to_str().unwrap(), "--model", "all"]));
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("channel_name,first_conversions,first_value,last_conversions,last_value,"));
    assert!(header.contains("markov_conversions,markov_value"));
    assert!(header.contains("shapley_conversions,shapley_value"));
    assert_eq!(out.lines().count(), 5);
}

#[test]
fn markov_json_has_removal_effects_and_transition_matrix() {
    let p = file("mk.csv", CA);
    let out = stdout(&run(&[p.to_str().unwrap(), "--model", "markov", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total: f64 = v["result"].as_array().unwrap().iter().map(|r| r["total_conversions"].as_f64().unwrap()).sum();
    assert!((total - 7.0).abs() < 1e-9);
    assert_eq!(v["markov"]["removal_effects"].as_array().unwrap().len(), 4);
    assert!(!v["markov"]["transition_matrix"].as_array().unwrap().is_empty());
}

#[test]
fn ndjson_time_decay() {
    let p = file(
        "j.ndjson",
        "{\"touches\":[{\"channel\":\"A\",\"at\":\"2026-03-01T08:00:00Z\"},{\"channel\":\"B\",\"at\":\"2026-03-01T10:00:00Z\"}],\"conversions\":1,\"value\":30}\n",
    );
    let out = stdout(&run(&[p.to_str().unwrap(), "--model", "time-decay", "--half-life", "2h"]));
    // weights 1/2 and 1 → A gets 1/3, B 2/3
    assert_eq!(out.lines().count(), 3);
    let a: Vec<f64> = out.lines().nth(1).unwrap().split(',').skip(1).map(|x| x.parse().unwrap()).collect();
    assert!((a[0] - 1.0 / 3.0).abs() < 1e-12 && (a[1] - 10.0).abs() < 1e-9);
}

/// The one line `run` prints for an input error.
fn input_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    stderr(o).trim_end().strip_prefix("error: ").unwrap_or_else(|| panic!("{o:?}")).to_owned()
}

#[test]
fn a_malformed_csv_line_names_the_file_line_and_column() {
    let p = file("bad.csv", "path;total_conversions\nA;1\nB > C;-2\n");
    let o = run(&[p.to_str().unwrap()]);
    assert_eq!(input_error(&o), format!("{}:3: total_conversions: must be a number ≥ 0, got `-2`", p.display()));
    let p = file("empty.csv", "path;total_conversions\nA;1\n > ;1\n");
    let o = run(&[p.to_str().unwrap(), "--model", "linear"]);
    assert_eq!(input_error(&o), format!("{}:3: path: must name at least one channel", p.display()));
    let p = file("short.csv", "path;total_conversions;total_null\nA;1;0\nB\n");
    let o = run(&[p.to_str().unwrap()]);
    assert_eq!(
        input_error(&o),
        format!("{}:3: total_conversions: missing: the line has 1 of the header's 3 fields", p.display())
    );
    let p = file("long.csv", "path,total_conversions\nA,1\nB,1,9\n");
    let o = run(&[p.to_str().unwrap()]);
    assert_eq!(input_error(&o), format!("{}:3: column 3: not in the header, which has 2 fields", p.display()));
    let p = file("nohdr.csv", "a;b\n1;2\n");
    let o = run(&[p.to_str().unwrap()]);
    assert_eq!(input_error(&o), format!("{}:1: path: the header has no such column", p.display()));
}

#[test]
fn a_malformed_ndjson_line_names_the_file_line_and_field() {
    let good = "{\"touches\":[{\"channel\":\"A\"}],\"conversions\":1}\n";
    for (third, field_problem) in [
        ("{oops", "journey: not JSON: key must be a string at column 2"),
        ("[1]", "journey: must be a JSON object (a journey or a visitor timeline)"),
        ("{\"touches\":[{\"channel\":\"B\"}],\"conversions\":-1}", "conversions: must be a finite number ≥ 0"),
        (
            "{\"touches\":[{\"channel\":\"B\"},{\"chanel\":\"C\"}]}",
            "touches[1].chanel: unknown field (expected one of: channel, at)",
        ),
        ("{\"touches\":[{\"channel\":7}]}", "touches[0].channel: must be a string"),
        ("{\"conversions\":1}", "touches: is required"),
        ("{\"touches\":[{\"channel\":\"B\",\"at\":\"yesterday\"}]}", "touches[0].at: must be an RFC 3339 date-time"),
        (
            "{\"touches\":[{\"channel\":\"B\",\"at\":\"2026-03-01T08:00:00Z\"},{\"channel\":\"C\"}]}",
            "touches[1].at: missing: either every touch has `at` or none does",
        ),
        (
            "{\"visitor\":\"v\",\"steps\":[{\"touch\":\"B\",\"at\":\"2026-03-01T08:00:00Z\"},{\"convert\":\"Lead\",\"at\":\"2026-03-01T09:00:00Z\",\"value\":-5}]}",
            "steps[1].value: must be a number ≥ 0",
        ),
        (
            "{\"visitor\":\"v\",\"steps\":[{\"at\":\"2026-03-01T08:00:00Z\"}]}",
            "steps[0]: needs exactly one of `touch` and `convert`",
        ),
    ] {
        let p = file("bad-line3.ndjson", &format!("{good}{good}{third}\n"));
        let o = run(&[p.to_str().unwrap(), "--model", "linear"]);
        assert_eq!(input_error(&o), format!("{}:3: {field_problem}", p.display()), "line 3: {third}");
    }
    // A line that is not UTF-8: the column of its first bad byte.
    let p = file("latin1.ndjson", good);
    let mut bytes = format!("{good}{good}").into_bytes();
    bytes.extend(b"{\"touches\":[{\"channel\":\"Caf\xe9\"}]}\n");
    std::fs::write(&p, bytes).unwrap();
    let o = run(&[p.to_str().unwrap(), "--model", "linear"]);
    assert_eq!(input_error(&o), format!("{}:3: journey: not UTF-8 at column 28", p.display()));
    // --lookback needs every touch timed: the first untimed one is named.
    let p = file("untimed.ndjson", &format!("{good}{good}{good}"));
    let o = run(&[p.to_str().unwrap(), "--lookback", "7d"]);
    assert_eq!(
        input_error(&o),
        format!("{}:1: touches[0].at: --lookback needs a timestamp on every touch", p.display())
    );
}

#[test]
fn time_decay_on_csv_is_a_clear_error() {
    let p = file("td.csv", CA);
    let o = run(&[p.to_str().unwrap(), "--model", "time-decay"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("time-decay needs NDJSON"));
}

const TIMELINES: &str = r#"{"visitor":"v1","steps":[{"touch":"Email","at":"2026-03-02T09:00:00Z"},{"convert":"Contact Submitted","at":"2026-03-02T09:05:00Z","value":150},{"touch":"Direct","at":"2026-03-04T10:00:00Z"},{"convert":"Client Signed","at":"2026-03-05T11:00:00Z","value":4800,"transaction_id":"M-17"},{"convert":"Client Signed","at":"2026-03-06T11:00:00Z","value":3000,"transaction_id":"M-17"}]}
{"visitor":"v2","steps":[{"touch":"Paid Search","at":"2026-03-01T09:00:00Z"},{"convert":"Client Signed","at":"2026-03-01T10:00:00Z","value":900}]}
"#;

#[test]
fn visitor_timelines_inherit_the_upstream_path_and_adjust_by_transaction() {
    let p = file("timelines.ndjson", TIMELINES);
    let path = p.to_str().unwrap();
    // Client Signed inherits the form's Email path (3000 after the adjustment,
    // not 4800 + 3000); v2 has no form, so its own Paid Search journey.
    // v1's Direct touch is an open, non-converting journey.
    let out = stdout(&run(&[path, "--model", "last", "--inherits", "Client Signed=Contact Submitted"]));
    assert_eq!(
        out,
        "channel_name,total_conversions,total_conversion_value\nDirect,0,0\nEmail,2,3150\nPaid Search,1,900\n"
    );
    // Without --inherits the signing closes the open journey: Direct takes it.
    let out = stdout(&run(&[path, "--model", "last"]));
    assert_eq!(
        out,
        "channel_name,total_conversions,total_conversion_value\nDirect,1,3000\nEmail,1,150\nPaid Search,1,900\n"
    );
}

#[test]
fn bad_inheritance_is_named() {
    let p = file("timelines2.ndjson", TIMELINES);
    let path = p.to_str().unwrap();
    let o =
        run(&[path, "--inherits", "Client Signed=Contact Submitted", "--inherits", "Contact Submitted=Client Signed"]);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "error: --inherits: `Contact Submitted`: a cycle of inheritance"
    );
    let o = run(&[path, "--inherits", "Client Signed"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--inherits: `Client Signed` is not DOWNSTREAM=UPSTREAM"));
    let csv = file("inh.csv", CA);
    let o = run(&[csv.to_str().unwrap(), "--inherits", "A=B"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--inherits needs NDJSON visitor timelines"));
}

/// Timed journeys every model can run on, time decay and `--model all` included.
const TIMED: &str = r#"{"touches":[{"channel":"A","at":"2026-03-01T08:00:00Z"},{"channel":"B","at":"2026-03-01T10:00:00Z"}],"conversions":1,"value":30}
{"touches":[{"channel":"B","at":"2026-03-02T08:00:00Z"},{"channel":"Direct","at":"2026-03-02T09:00:00Z"}],"conversions":1,"value":10}
{"touches":[{"channel":"A","at":"2026-03-03T08:00:00Z"}],"nulls":1}
"#;

/// Every spelling `--model` has accepted: the names and their aliases.
const MODEL_SPELLINGS: [&str; 15] = [
    "first",
    "first-touch",
    "last",
    "last-touch",
    "last-non-direct",
    "linear",
    "time-decay",
    "position",
    "u",
    "j",
    "inverse-j",
    "markov",
    "shapley",
    "zhao",
    "all",
];

#[test]
fn every_model_spelling_format_and_shapley_game_is_accepted() {
    let p = file("timed.ndjson", TIMED);
    let path = p.to_str().unwrap();
    for model in MODEL_SPELLINGS {
        for format in ["csv", "json"] {
            let o = run(&[path, "--model", model, "--format", format]);
            assert!(o.status.success(), "--model {model} --format {format}: {}", stderr(&o));
        }
    }
    for game in ["conversions", "rate"] {
        let o = run(&[path, "--model", "shapley", "--shapley-game", game]);
        assert!(o.status.success(), "--shapley-game {game}: {}", stderr(&o));
    }
    // An alias is the model it stands for.
    assert_eq!(stdout(&run(&[path, "--model", "u"])), stdout(&run(&[path, "--model", "position"])));
    assert_eq!(stdout(&run(&[path, "--model", "first-touch"])), stdout(&run(&[path, "--model", "first"])));
}

#[test]
fn a_value_outside_the_choices_is_refused_by_clap_with_the_choices() {
    let p = file("choices.ndjson", TIMED);
    let path = p.to_str().unwrap();
    for (flag, bad, choices) in [
        (
            "--model",
            "best",
            "first, last, last-non-direct, linear, time-decay, position, j, inverse-j, markov, shapley, zhao, all",
        ),
        ("--format", "xml", "csv, json"),
        ("--shapley-game", "size", "conversions, rate"),
    ] {
        // With `--model first`, the Shapley game is checked even when no Shapley model runs.
        let o = if flag == "--model" { run(&[path, flag, bad]) } else { run(&[path, "--model", "first", flag, bad]) };
        assert_eq!(o.status.code(), Some(2), "{flag} {bad}: {o:?}");
        let err = stderr(&o);
        assert!(err.contains(&format!("invalid value '{bad}' for '{flag} <")), "{err}");
        assert!(err.contains(&format!("[possible values: {choices}]")), "{err}");
        assert!(o.stdout.is_empty());
    }
    // `-h` lists the choices after each flag's help.
    let help = stdout(&run(&["-h"]));
    for choices in [
        "[default: markov] [possible values: first, last, last-non-direct, linear, time-decay, position, j, inverse-j, markov, shapley, zhao, all]",
        "[default: csv] [possible values: csv, json]",
        "[default: conversions] [possible values: conversions, rate]",
    ] {
        assert!(help.contains(choices), "{choices}: {help}");
    }
}
