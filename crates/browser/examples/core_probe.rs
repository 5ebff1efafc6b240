//! Size probe (`cargo xtask size --probe`): the share of the browser module
//! that is the core's, measured apart. It makes exactly the core calls the
//! module makes — consent resolution from raw signals, the e-mail key,
//! event validation, minimisation and wire JSON, the default and compact
//! rules, the scorer and its explanation — with the same `JsValue` ⇄ `serde_json::Value` walk, and
//! none of the module's DOM, storage or transport work. Built like the
//! module (nightly build-std, immediate-abort, wasm-opt -Oz), its gzip size
//! is the floor any module running this core can reach.
//!
//! Never shipped and never loaded by a page: a measuring instrument only.

// `Value[&str]` reads `Null` on a miss and never panics; the probe keeps the
// module's own access pattern so its size is the module's.
#![allow(clippy::indexing_slicing)]

use microfunnel_core::consent::{self, ConsentMode, ConsentSignals, ExplicitChoice, MinimisePolicy, TcfSignal};
use microfunnel_core::event::MessageId;
use microfunnel_core::scoring::{Rules, Scorer};
use microfunnel_core::{Event, Limits, Timestamp};
use serde_json::Value;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

// The module's own `JsValue` ⇄ `Value` walk, compiled in from its source
// (linking the module would bring its `cmd` export along).
#[path = "../src/conv.rs"]
#[allow(dead_code)]
mod conv;
#[path = "../src/js.rs"]
#[allow(dead_code)]
mod js;

thread_local!(static SCORER: RefCell<Scorer> = RefCell::new(Scorer::new(Rules::default_rules())));

/// `op` 0: compact rules → new scorer; 1: `{signals, event, random}` →
/// the minimised wire event; 2: the explanation.
#[wasm_bindgen]
pub fn probe(op: u32, arg: JsValue) -> JsValue {
    let v = conv::to_value(&arg);
    let Some(now) = Timestamp::from_millis(js_sys::Date::now() as i64) else { return JsValue::NULL };
    match op {
        0 => {
            if let Ok(rules) = Rules::from_compact(&v) {
                SCORER.with(|s| *s.borrow_mut() = Scorer::new(rules));
            }
            JsValue::NULL
        }
        1 => {
            let s = &v["signals"];
            let explicit = s["calls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(ExplicitChoice::parse)
                .fold(None, |acc: Option<ExplicitChoice>, c| Some(acc.unwrap_or_default().then(c)));
            let consent = consent::resolve(&ConsentSignals {
                explicit,
                consent_mode: ConsentMode::from_json(&s["gcm"]),
                tcf: TcfSignal::from_json(&s["tcf"]),
                gpc: s["gpc"].as_bool().unwrap_or(false),
                dnt: s["dnt"].as_bool().unwrap_or(false),
                respect_dnt: s["respect_dnt"].as_bool().unwrap_or(false),
            });
            let mut raw = v["event"].clone();
            let mut bytes = [0u8; 16];
            for (b, x) in bytes.iter_mut().zip(v["random"].as_array().into_iter().flatten()) {
                *b = x.as_u64().unwrap_or(0) as u8;
            }
            if let Some(m) = raw.as_object_mut() {
                m.insert("messageId".into(), Value::String(MessageId::from_random_bytes(bytes).to_text()));
                if let Some(t) = m.get_mut("traits").and_then(Value::as_object_mut) {
                    microfunnel_core::identity::pseudonymise(t);
                }
            }
            let Ok(mut event) = Event::parse(&raw, &Limits::DEFAULT, now) else { return JsValue::NULL };
            event.consent = Some(consent.stamp());
            let change = SCORER.with(|s| s.borrow_mut().apply(&event));
            let out = consent::minimise_with(event, &consent, &MinimisePolicy::default());
            let wire = out.event.map_or(Value::Null, |e| e.to_json());
            let tier = change.map_or(Value::Null, |c| Value::String(c.to));
            conv::to_js(&Value::Array(vec![wire, tier]))
        }
        _ => SCORER.with(|s| conv::to_js(&s.borrow().score(now).to_json())),
    }
}
