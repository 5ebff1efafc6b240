//! The loader's raw signals (what `mf.js` gathers from the page, handed to
//! the module as it is) read into [`ConsentSignals`]. Raw shape:
//! `{calls: [mf('consent', …) arguments…], gcm: [dataLayer `consent`
//! commands…], tcf: {gdprApplies, purposeConsents}, gpc, dnt, respect_dnt}`.
//! The page is not trusted to be well formed: anything malformed counts as
//! absent (so, in the end, denied), never as an error that stops capture of
//! what the visitor did allow.

use super::signals::{ConsentMode, ConsentSignals, ExplicitChoice, GcmValue, TcfSignal};
use serde_json::Value;

/// Reads the loader's raw signals.
pub fn from_loader(raw: &Value) -> ConsentSignals {
    let list = |k: &str| raw.get(k).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let mut explicit: Option<ExplicitChoice> = None;
    for c in list("calls") {
        if let Some(next) = ExplicitChoice::parse(c) {
            explicit = Some(explicit.unwrap_or_default().then(next));
        }
    }
    let tcf = raw.get("tcf").and_then(|t| {
        // A CMP's purpose map may carry nulls for purposes it never asked.
        let mut t = t.clone();
        if let Some(Value::Object(pc)) = t.get_mut("purposeConsents") {
            pc.retain(|_, b| b.is_boolean());
        }
        TcfSignal::from_json(&t)
    });
    let flag = |k: &str| raw.get(k).and_then(Value::as_bool).unwrap_or(false);
    ConsentSignals {
        explicit,
        consent_mode: fold_consent_mode(list("gcm")),
        tcf,
        gpc: flag("gpc"),
        dnt: flag("dnt"),
        respect_dnt: flag("respect_dnt"),
    }
}

/// Consent Mode v2 from `gtag('consent', 'default'|'update', {...})`
/// commands in page order: the last value per key wins, and an `update` is
/// never overridden by a later `default` (a tag that loads late sets its
/// defaults after the visitor already chose). Values other than `granted`
/// and `denied`, and other commands, are ignored.
pub fn fold_consent_mode(commands: &[Value]) -> Option<ConsentMode> {
    let mut state = ConsentMode::default();
    let mut updated = [false; 5];
    let mut any = false;
    for c in commands {
        let (Some(kind), Some(values)) = (c.get(1).and_then(Value::as_str), c.get(2).and_then(Value::as_object)) else {
            continue;
        };
        let update = match kind {
            "update" => true,
            "default" => false,
            _ => continue,
        };
        let slots = [
            ("analytics_storage", &mut state.analytics_storage),
            ("ad_storage", &mut state.ad_storage),
            ("ad_user_data", &mut state.ad_user_data),
            ("ad_personalization", &mut state.ad_personalization),
            ("personalization_storage", &mut state.personalization_storage),
        ];
        for ((key, slot), was_updated) in slots.into_iter().zip(updated.iter_mut()) {
            let Some(v) = values.get(key).and_then(GcmValue::parse) else { continue };
            if update || !*was_updated {
                *slot = Some(v);
                *was_updated |= update;
                any = true;
            }
        }
    }
    any.then_some(state)
}
