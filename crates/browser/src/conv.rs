//! `serde_json::Value` ⇄ JavaScript values by walking them: the browser's own
//! `JSON` does all text work, so no JSON parser or printer ships in the wasm.

use crate::js;
use js_sys::Array;
use serde_json::{Map, Number, Value};
use wasm_bindgen::{JsCast, JsValue};

/// Depth guard: untrusted page objects may be cyclic or absurdly deep.
const MAX_DEPTH: usize = 8;

pub fn to_value(v: &JsValue) -> Value {
    walk(v, 0)
}

fn walk(v: &JsValue, depth: usize) -> Value {
    if let Some(b) = v.as_bool() {
        return Value::Bool(b);
    }
    if let Some(n) = v.as_f64() {
        // Integers stay integers (the core compares them exactly).
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            return Value::Number(Number::from(n as i64));
        }
        return Number::from_f64(n).map_or(Value::Null, Value::Number);
    }
    if let Some(s) = v.as_string() {
        return Value::String(s);
    }
    if depth >= MAX_DEPTH || v.is_function() {
        return Value::Null;
    }
    if let Some(a) = v.dyn_ref::<Array>() {
        return Value::Array(a.iter().map(|x| walk(&x, depth + 1)).collect());
    }
    if v.is_object() {
        let mut m = Map::new();
        for k in js::keys(v) {
            let x = js::get(v, &k);
            if !x.is_undefined() && !x.is_function() {
                m.insert(k, walk(&x, depth + 1));
            }
        }
        return Value::Object(m);
    }
    Value::Null
}

pub fn to_js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(a) => {
            let out = Array::new();
            for x in a {
                out.push(&to_js(x));
            }
            out.into()
        }
        Value::Object(m) => {
            let o = js::obj();
            for (k, x) in m {
                js::set(&o, k, &to_js(x));
            }
            o
        }
    }
}
