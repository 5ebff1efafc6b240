//! Size probe (`cargo xtask size --probe`): the share of the browser module
//! that is the core's, measured apart. It makes exactly the core calls the
//! module makes — consent resolution from raw signals, event validation,
//! minimisation and wire JSON, the default and compact rules, the scorer and
//! its explanation — with the same `JsValue` ⇄ `serde_json::Value` walk, and
//! none of the module's DOM, storage or transport work. Built like the
//! module (nightly build-std, immediate-abort, wasm-opt -Oz), its gzip size
//! is the floor any module running this core can reach.
//!
//! Never shipped and never loaded by a page: a measuring instrument only.

use js_sys::{Array, Object, Reflect};
use microfunnel_core::consent::{self, ConsentMode, ConsentSignals, ExplicitChoice, MinimisePolicy, TcfSignal};
use microfunnel_core::event::MessageId;
use microfunnel_core::scoring::{Rules, Scorer};
use microfunnel_core::{Event, Limits, Timestamp};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local!(static SCORER: RefCell<Scorer> = RefCell::new(Scorer::new(Rules::default_rules())));

/// `op` 0: compact rules → new scorer; 1: `{signals, event, random}` →
/// the minimised wire event; 2: the explanation.
#[wasm_bindgen]
pub fn probe(op: u32, arg: JsValue) -> JsValue {
    let v = walk(&arg, 0);
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
            let explicit = s["calls"].as_array().into_iter().flatten().filter_map(ExplicitChoice::parse).last();
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
            }
            let Ok(mut event) = Event::parse(&raw, &Limits::DEFAULT, now) else { return JsValue::NULL };
            event.consent = Some(consent.stamp());
            let change = SCORER.with(|s| s.borrow_mut().apply(&event));
            let out = consent::minimise_with(event, &consent, &MinimisePolicy::default());
            let wire = out.event.map_or(Value::Null, |e| e.to_json());
            let tier = change.map_or(Value::Null, |c| Value::String(c.to));
            to_js(&Value::Array(vec![wire, tier]))
        }
        _ => SCORER.with(|s| to_js(&s.borrow().score(now).to_json())),
    }
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// The module's own walk (`conv.rs`), repeated here: the probe must not link
/// the module, whose `cmd` export would come with it.
fn walk(v: &JsValue, depth: usize) -> Value {
    if let Some(b) = v.as_bool() {
        return Value::Bool(b);
    }
    if let Some(n) = v.as_f64() {
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            return Value::Number(Number::from(n as i64));
        }
        return Number::from_f64(n).map_or(Value::Null, Value::Number);
    }
    if let Some(s) = v.as_string() {
        return Value::String(s);
    }
    if depth >= 8 || v.is_function() {
        return Value::Null;
    }
    if let Some(a) = v.dyn_ref::<Array>() {
        return Value::Array(a.iter().map(|x| walk(&x, depth + 1)).collect());
    }
    let Some(o) = v.dyn_ref::<Object>() else { return Value::Null };
    let mut m = Map::new();
    for k in Object::keys(o).iter().filter_map(|k| k.as_string()) {
        m.insert(k.clone(), walk(&get(v, &k), depth + 1));
    }
    Value::Object(m)
}

fn to_js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(a) => a.iter().map(to_js).collect::<Array>().into(),
        Value::Object(m) => {
            let o = Object::new();
            for (k, x) in m {
                let _ = Reflect::set(&o, &JsValue::from_str(k), &to_js(x));
            }
            o.into()
        }
    }
}
