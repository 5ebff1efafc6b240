//! Conditional CTAs and tier notifications.
//!
//! `[data-mf-tier="cold warm"]` shows only in those tiers; `[data-mf-cta=name]`
//! takes its text and href for the tier from the site config — through
//! `textContent` and `setAttribute` only, never markup, and only http(s) or
//! same-site hrefs. Until the first decision the loader keeps
//! `[data-mf-tier]` invisible (`html:not(.mf-d)`); the decision adds `mf-d`.

use crate::app::{self, App, Effects};
use crate::js;
use microfunnel_core::experiment;
use serde_json::Value;
use wasm_bindgen::JsValue;

pub fn all(sel: &str) -> Vec<JsValue> {
    let list = js::call(&js::g("document"), "querySelectorAll", &[&js::s(sel)]);
    let n = js::get(&list, "length").as_f64().unwrap_or(0.0) as u32;
    (0..n).map(|i| js::call(&list, "item", &[&JsValue::from(i)])).collect()
}

/// Shows the elements of `tier`, hides the others, swaps CTA variants.
pub fn show(app: &mut App) {
    let coldest = app.scorer.rules().tier_ids().next().unwrap_or("cold").to_owned();
    let scored = app::current_tier(app).unwrap_or_else(|| coldest.clone());
    // The holdout is shown the coldest tier's CTAs whatever its score.
    let tier = experiment::shown_tier(app::arm(app), &scored, &coldest).to_owned();
    for el in all("[data-mf-tier]") {
        let list = js::call(&el, "getAttribute", &[&js::s("data-mf-tier")]).as_string().unwrap_or_default();
        let on = list.split_whitespace().any(|t| t == tier);
        let style = js::get(&el, "style");
        if on {
            js::call(&style, "removeProperty", &[&js::s("display")]);
        } else {
            js::call(&style, "setProperty", &[&js::s("display"), &js::s("none"), &js::s("important")]);
        }
    }
    for el in all("[data-mf-cta]") {
        let name = js::call(&el, "getAttribute", &[&js::s("data-mf-cta")]).as_string().unwrap_or_default();
        let Some(variant) = app.cta.get(&name).and_then(|c| c.get(&tier)) else { continue };
        if let Some(text) = variant.get("text").and_then(Value::as_str) {
            js::set(&el, "textContent", &js::s(text));
        }
        if let Some(href) =
            variant.get("href").and_then(Value::as_str).filter(|h| microfunnel_core::site_config::is_safe_href(h))
        {
            js::call(&el, "setAttribute", &[&js::s("href"), &js::s(href)]);
        }
    }
    let html = js::get(&js::g("document"), "documentElement");
    js::call(&js::get(&html, "classList"), "add", &[&js::s("mf-d")]);
    app.tier = Some(tier);
}

/// After the state is released: tier callbacks and the `mf:tier` DOM event.
pub fn fire(fx: Effects) {
    let Some((_, detail)) = fx.tier else { return };
    let cbs = app::with(|a| {
        show(a);
        a.tier_cbs.clone()
    })
    .unwrap_or_default();
    notify(&cbs, &crate::conv::to_js(&detail));
}

pub fn notify(cbs: &[js_sys::Function], detail: &JsValue) {
    for cb in cbs {
        js::apply(cb, &JsValue::NULL, &[detail]);
    }
    let init = js::obj();
    js::set(&init, "detail", detail);
    let ev = js::construct("CustomEvent", &[&js::s("mf:tier"), &init]);
    js::call(&js::global(), "dispatchEvent", &[&ev]);
}
