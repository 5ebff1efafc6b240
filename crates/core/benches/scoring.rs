//! Scoring throughput: `Scorer::apply` per event (steady state, time order)
//! and batch `evaluate` over 1M events. Not part of `cargo test`; run with
//! `cargo bench -p microfunnel-core --bench scoring`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use microfunnel_core::event::{Event, Limits};
use microfunnel_core::scoring::{Rules, Scorer, evaluate};
use microfunnel_core::timestamp::Timestamp;
use serde_json::json;
use std::hint::black_box;

const START: i64 = 1_772_445_600_000; // 2026-03-02T10:00:00Z

/// A realistic mix: page views (matched and not), email events, element
/// clicks, unknown events, the odd identify; 7 minutes apart.
fn events(n: usize) -> Vec<Event> {
    let limits = Limits { max_age_ms: i64::MAX, max_future_ms: i64::MAX, ..Limits::DEFAULT };
    let now = Timestamp::from_millis(START).unwrap();
    let stamp = json!({"analytics": true, "personalization": true, "marketing": false, "policy": 1});
    (0..n)
        .map(|i| {
            let at = Timestamp::from_millis(START + i as i64 * 7 * 60_000).unwrap().to_string();
            let id = format!("00000000-0000-4000-8000-{i:012x}");
            let mut raw = json!({"messageId": id, "anonymousId": "v1", "timestamp": at, "consent": stamp});
            match i % 8 {
                0 => raw.as_object_mut().unwrap().extend([
                    ("type".into(), json!("page")),
                    ("context".into(), json!({"page": {"path": "/pricing"}})),
                ]),
                1 => raw.as_object_mut().unwrap().extend([
                    ("type".into(), json!("page")),
                    ("context".into(), json!({"page": {"path": "/blog/2026/scoring"}})),
                ]),
                2 => raw
                    .as_object_mut()
                    .unwrap()
                    .extend([("type".into(), json!("page")), ("context".into(), json!({"page": {"path": "/about"}}))]),
                3 => raw
                    .as_object_mut()
                    .unwrap()
                    .extend([("type".into(), json!("track")), ("event".into(), json!("Email Opened"))]),
                4 => raw.as_object_mut().unwrap().extend([
                    ("type".into(), json!("track")),
                    ("event".into(), json!("Element Clicked")),
                    ("properties".into(), json!({"mf_element": "buy"})),
                ]),
                5 => raw
                    .as_object_mut()
                    .unwrap()
                    .extend([("type".into(), json!("track")), ("event".into(), json!("Video Played"))]),
                6 => raw
                    .as_object_mut()
                    .unwrap()
                    .extend([("type".into(), json!("track")), ("event".into(), json!("email.unsubscribe"))]),
                _ if i % 64 == 7 => raw
                    .as_object_mut()
                    .unwrap()
                    .extend([("type".into(), json!("identify")), ("traits".into(), json!({"role": "cto"}))]),
                _ => raw
                    .as_object_mut()
                    .unwrap()
                    .extend([("type".into(), json!("page")), ("context".into(), json!({"page": {"path": "/"}}))]),
            }
            Event::parse(&raw, &limits, now).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rules = Rules::default_rules();
    let small = events(10_000);
    let mut g = c.benchmark_group("scorer");
    g.throughput(Throughput::Elements(small.len() as u64));
    g.bench_function("apply_10k_events", |b| {
        b.iter_batched(
            || Scorer::new(rules.clone()),
            |mut scorer| {
                for e in &small {
                    black_box(scorer.apply(e));
                }
                scorer
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let big = events(1_000_000);
    let at = big.last().unwrap().timestamp;
    let mut g = c.benchmark_group("batch");
    g.sample_size(10);
    g.throughput(Throughput::Elements(big.len() as u64));
    g.bench_function("evaluate_1m_events", |b| b.iter(|| black_box(evaluate(&rules, &big, at))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
