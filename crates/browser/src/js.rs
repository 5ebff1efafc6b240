//! Dynamic access to the page's JavaScript objects through `Reflect`.
//!
//! Why not web-sys: every web-sys method is one more import in the
//! wasm-bindgen glue, and the glue counts against the 25 KB budget. A handful
//! of `Reflect` imports cover every DOM call we make; property names live in
//! the wasm's data section. Every call here swallows exceptions (storage may
//! throw `SecurityError`, a site may have broken `history`): the module must
//! never die because the page misbehaves.

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub const U: JsValue = JsValue::UNDEFINED;

pub fn global() -> JsValue {
    js_sys::global().into()
}

/// `globalThis[k]`.
pub fn g(k: &str) -> JsValue {
    get(&global(), k)
}

pub fn get(o: &JsValue, k: &str) -> JsValue {
    if o.is_undefined() || o.is_null() {
        return U;
    }
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(U)
}

pub fn set(o: &JsValue, k: &str, v: &JsValue) {
    if o.is_object() {
        let _ = Reflect::set(o, &JsValue::from_str(k), v);
    }
}

pub fn get_str(o: &JsValue, k: &str) -> Option<String> {
    get(o, k).as_string()
}

/// `o[m](...args)`; `undefined` if it is not a function or it threw.
pub fn call(o: &JsValue, m: &str, args: &[&JsValue]) -> JsValue {
    let f = get(o, m);
    match f.dyn_ref::<Function>() {
        Some(f) => apply(f, o, args),
        None => U,
    }
}

pub fn apply(f: &Function, this: &JsValue, args: &[&JsValue]) -> JsValue {
    let arr = Array::new();
    for a in args {
        arr.push(a);
    }
    Reflect::apply(f, this, &arr).unwrap_or(U)
}

pub fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

pub fn obj() -> JsValue {
    Object::new().into()
}

/// A JavaScript function that calls `f` with its first argument. Leaked on
/// purpose: listeners live as long as the page.
pub fn func(f: impl FnMut(JsValue) + 'static) -> JsValue {
    Closure::<dyn FnMut(JsValue)>::new(f).into_js_value()
}

/// `target.addEventListener(ev, f, {capture, passive: true})`.
pub fn listen(target: &JsValue, ev: &str, capture: bool, f: impl FnMut(JsValue) + 'static) {
    let opts = obj();
    set(&opts, "capture", &JsValue::from_bool(capture));
    set(&opts, "passive", &JsValue::TRUE);
    call(target, "addEventListener", &[&s(ev), &func(f), &opts]);
}

pub fn timeout(ms: f64, f: impl FnMut(JsValue) + 'static) {
    call(&global(), "setTimeout", &[&func(f), &JsValue::from_f64(ms)]);
}

pub fn now() -> f64 {
    js_sys::Date::now()
}

/// `new Date(ms).toISOString()`: RFC 3339 without Rust's formatting code.
pub fn iso(ms: f64) -> String {
    js_sys::Date::new(&JsValue::from_f64(ms)).to_iso_string().into()
}

pub fn stringify(v: &JsValue) -> Option<String> {
    js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string())
}

pub fn parse(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap_or(U)
}

/// `storage.getItem(k)`, `None` when unavailable.
pub fn store_get(area: &str, k: &str) -> Option<String> {
    call(&g(area), "getItem", &[&s(k)]).as_string()
}

pub fn store_set(area: &str, k: &str, v: &str) {
    call(&g(area), "setItem", &[&s(k), &s(v)]);
}

pub fn store_del(area: &str, k: &str) {
    call(&g(area), "removeItem", &[&s(k)]);
}

/// 16 bytes from `crypto.getRandomValues` (no getrandom cfg dance on
/// wasm32-unknown-unknown, no extra glue).
pub fn random16() -> [u8; 16] {
    let buf = js_sys::Uint8Array::new_with_length(16);
    call(&g("crypto"), "getRandomValues", &[&buf]);
    let mut out = [0u8; 16];
    if buf.length() == 16 {
        buf.copy_to(&mut out);
    }
    out
}

/// `new Ctor(...args)` for a global constructor.
pub fn construct(ctor: &str, args: &[&JsValue]) -> JsValue {
    let Some(f) = g(ctor).dyn_into::<Function>().ok() else { return U };
    let arr = Array::new();
    for a in args {
        arr.push(a);
    }
    Reflect::construct(&f, &arr).unwrap_or(U)
}

/// `Object.keys(o)` as strings.
pub fn keys(o: &JsValue) -> Vec<String> {
    match o.dyn_ref::<Object>() {
        Some(o) => Object::keys(o).iter().filter_map(|k| k.as_string()).collect(),
        None => Vec::new(),
    }
}
