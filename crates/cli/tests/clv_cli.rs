//! `microfunnel clv` end to end: a summary or transactions in, per-customer
//! predictions out as CSV or JSON; bad rows refused as `FILE:LINE: FIELD:
//! PROBLEM`; too little data refused with the minimum named. (The CDNOW and
//! lifetimes comparisons are `tests/clv/check_lifetimes.py`, run by
//! `cargo xtask test`.)

use std::io::Write;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microfunnel")).arg("clv").args(args).output().expect("runs")
}

fn file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mf-clv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
    p.to_str().unwrap().to_owned()
}

fn refused(o: &Output) -> String {
    assert!(!o.status.success(), "should fail: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Purchase days (0..=180) and values of `n` customers of a buy-till-you-die
/// process: first purchase on a uniform day, then exponential gaps at a rate
/// that differs per customer, and after each purchase a per-customer chance of
/// leaving. Deterministic (splitmix64).
fn histories(n: usize) -> Vec<Vec<(i64, u32)>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let rate = -(1.0 - uniform()).ln() / 25.0;
            let leave = uniform() * uniform();
            // Some spend more than others, each a little more or less each time.
            let level = 50.0 + 400.0 * uniform() * uniform();
            let spend = move |u: f64| (level * (0.6 + 0.8 * u)) as u32;
            let mut day = (uniform() * 150.0).floor();
            let mut out = vec![(day as i64, spend(uniform()))];
            loop {
                day += (-(1.0 - uniform()).ln() / rate).ceil();
                if day > 180.0 {
                    break;
                }
                out.push((day as i64, spend(uniform())));
                if uniform() < leave {
                    break;
                }
            }
            out
        })
        .collect()
}

/// Day 0 is 2026-01-01.
fn date(day: i64) -> String {
    let lengths = [31, 28, 31, 30, 31, 30, 31];
    let (mut month, mut rest) = (0, day);
    while rest >= lengths[month] {
        rest -= lengths[month];
        month += 1;
    }
    format!("2026-{:02}-{:02}", month + 1, rest + 1)
}

/// The RFM summary of `histories(n)` in days, observed to day 180.
fn summary_of(n: usize) -> String {
    let mut s = String::from("ID,frequency,recency,T,monetary_value\n");
    for (i, h) in histories(n).iter().enumerate() {
        let (first, last) = (h[0].0, h[h.len() - 1].0);
        let repeats = &h[1..];
        let mean = if repeats.is_empty() {
            0.0
        } else {
            repeats.iter().map(|(_, v)| f64::from(*v)).sum::<f64>() / repeats.len() as f64
        };
        s.push_str(&format!("c{i},{},{},{},{mean}\n", repeats.len(), last - first, 180 - first));
    }
    s
}

fn summary() -> String {
    summary_of(60)
}

#[test]
fn predicts_every_customer_as_csv() {
    let out = run(&["--summary", &file("s.csv", &summary()), "--horizon", "52"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("customer_id,frequency,recency,T,p_alive,expected_purchases,expected_value"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 60);
    for r in &rows {
        let p_alive: f64 = r[4].parse().unwrap();
        let purchases: f64 = r[5].parse().unwrap();
        let value: f64 = r[6].parse().unwrap();
        assert!((0.0..=1.0).contains(&p_alive) && purchases >= 0.0 && value >= 0.0, "{r:?}");
    }
    // Of two customers as old, the one who came back more often and more
    // lately is expected to buy more.
    let col = |r: &Vec<&str>, i: usize| r[i].parse::<f64>().unwrap();
    let best = rows.iter().max_by(|a, b| col(a, 5).total_cmp(&col(b, 5))).unwrap();
    assert!(col(best, 1) >= 2.0, "{best:?}");
}

#[test]
fn json_carries_the_parameters_and_likelihoods() {
    let out = run(&["--summary", &file("j.csv", &summary()), "--horizon", "10", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["r", "alpha", "a", "b", "p", "q", "v"] {
        assert!(doc["params"][k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(doc["log_likelihood"]["bg_nbd"].as_f64().unwrap() < 0.0);
    assert_eq!(doc["customers"].as_array().unwrap().len(), 60);
    assert_eq!(doc["customers"][0]["customer_id"], "c0");
}

#[test]
fn bad_summary_rows_are_named() {
    let dup = file("dup.csv", &format!("{}c1,0,0,5,0\n", summary()));
    // The duplicate is on line 62: the header, 60 customers, then it.
    assert!(refused(&run(&["--summary", &dup])).contains("dup.csv:62: ID: duplicate customer `c1`"));
    let late = file("late.csv", "ID,frequency,recency,T\na,2,9,5\n");
    assert!(refused(&run(&["--summary", &late])).contains("late.csv:2: recency: must not exceed T"));
    let text = file("text.csv", "ID,frequency,recency,T\na,two,1,5\n");
    assert!(refused(&run(&["--summary", &text])).contains("text.csv:2: frequency: not a count of purchases: `two`"));
    let neg = file("neg.csv", "ID,frequency,recency,T,monetary_value\na,1,1,5,-3\n");
    assert!(refused(&run(&["--summary", &neg])).contains("neg.csv:2: monetary_value: must be a finite number ≥ 0"));
    let missing = file("missing.csv", "ID,frequency,T\na,1,5\n");
    assert!(refused(&run(&["--summary", &missing])).contains("missing.csv:1: recency: missing column"));
}

#[test]
fn too_little_data_names_the_minimum() {
    let few = file("few.csv", "ID,frequency,recency,T\na,1,1,5\nb,0,0,5\n");
    assert!(refused(&run(&["--summary", &few])).contains("BG/NBD needs at least 20 customers to fit on; got 2"));
}

#[test]
fn transactions_are_summarised_and_bad_rows_named() {
    let mut csv = String::from("customer_id,date,value\n");
    let h = histories(60);
    for (i, purchases) in h.iter().enumerate() {
        for (day, value) in purchases {
            csv.push_str(&format!("c{i},{},{value}.00\n", date(*day)));
        }
    }
    let ok = file("tx.csv", &csv);
    let out = run(&["--transactions", &ok, "--observation-end", "2026-06-30", "--unit", "week", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The summary the core built is the one written by hand above, in weeks.
    let expected = summary();
    let customers = doc["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 60);
    for line in expected.lines().skip(1) {
        let id = line.split(',').next().unwrap();
        let c = customers.iter().find(|c| c["customer_id"] == id).unwrap();
        let cells: Vec<f64> = line.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
        assert_eq!(c["frequency"].as_f64(), Some(cells[0]), "{c}");
        assert!((c["recency"].as_f64().unwrap() - cells[1] / 7.0).abs() < 1e-12, "{c}");
        assert!((c["T"].as_f64().unwrap() - cells[2] / 7.0).abs() < 1e-12, "{c}");
        assert!((c["monetary_value"].as_f64().unwrap() - cells[3]).abs() < 1e-9, "{c}");
    }

    // Observed to May 31 only: the first purchase after it is named.
    let first_late = csv
        .lines()
        .position(|l| l.split(',').nth(1).is_some_and(|d| d.starts_with("2026") && d > "2026-05-31"))
        .unwrap();
    let after = run(&["--transactions", &ok, "--observation-end", "2026-05-31"]);
    assert!(refused(&after).contains(&format!("tx.csv:{}: date: after the observation end", first_late + 1)));
    let bad = file("badtx.csv", "customer_id,date,value\na,2026-01-01,12\na,2026-01-02,-5\n");
    assert!(
        refused(&run(&["--transactions", &bad, "--observation-end", "2026-02-01"])).contains("badtx.csv:3: value:")
    );
    let words = file("words.csv", "customer_id,date,value\na,2026-01-01,twelve\n");
    assert!(
        refused(&run(&["--transactions", &words, "--observation-end", "2026-02-01"])).contains("words.csv:2: value:")
    );
    let date = file("date.csv", "customer_id,date,value\na,2026-13-01,1\n");
    assert!(
        refused(&run(&["--transactions", &date, "--observation-end", "2026-02-01"]))
            .contains("date.csv:2: date: not a date")
    );
    let no_end = run(&["--transactions", &ok]);
    assert!(refused(&no_end).contains("--observation-end"));
}

#[test]
fn ndjson_conversions_are_purchases() {
    let mut nd = String::new();
    for (i, purchases) in histories(60).iter().enumerate() {
        for (k, (day, value)) in purchases.iter().enumerate() {
            let at = format!("{}T10:00:00Z", date(*day));
            nd.push_str(&format!(
                "{{\"type\":\"track\",\"event\":\"Client Signed\",\"userId\":\"u{i}\",\"messageId\":\"m{i}-{k}\",\
                 \"timestamp\":\"{at}\",\"properties\":{{\"value\":\"{value}.50\"}}}}\n"
            ));
        }
        nd.push_str(&format!(
            "{{\"type\":\"page\",\"anonymousId\":\"a{i}\",\"messageId\":\"p{i}\",\"timestamp\":\"2026-01-01T09:00:00Z\"}}\n"
        ));
    }
    let p = file("events.ndjson", &nd);
    let out = run(&[
        "--transactions",
        &p,
        "--conversion",
        "Client Signed",
        "--observation-end",
        "2026-06-30",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let customers = doc["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 60);
    let h = histories(60);
    for (i, purchases) in h.iter().enumerate() {
        let c = customers.iter().find(|c| c["customer_id"] == format!("u{i}")).unwrap();
        let repeats = &purchases[1..];
        assert_eq!(c["frequency"].as_u64(), Some(repeats.len() as u64), "{c}");
        if !repeats.is_empty() {
            let mean = repeats.iter().map(|(_, v)| f64::from(*v) + 0.5).sum::<f64>() / repeats.len() as f64;
            assert!((c["monetary_value"].as_f64().unwrap() - mean).abs() < 1e-9, "{c}");
        }
    }
    let none = run(&["--transactions", &p, "--conversion", "Nope", "--observation-end", "2026-06-30"]);
    assert!(refused(&none).contains("no `Nope` events"));
}
