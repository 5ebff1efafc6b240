//! Consent: four purposes, one state resolved from every signal the browser
//! can read, and minimisation of events to what that state allows.
//!
//! # Precedence (per purpose, first rule that decides wins)
//! 1. **GPC** (`navigator.globalPrivacyControl`) denies *marketing*, whatever
//!    any other source says — it is a legal objection to sale/sharing.
//! 2. **Explicit choice** through our API (the site's own banner or ours).
//!    A purpose the choice leaves out is decided by the rules below.
//! 3. **DNT**, when the site opted to honour it, denies every purpose the
//!    visitor has not explicitly granted.
//! 4. **TCF v2.2** (a CMP present and `gdprApplies`): analytics needs purposes
//!    1, 8 and 9; personalization 1, 5 and 6; marketing 1, 2, 3, 4 and 7.
//!    Only consents count, not legitimate interest.
//! 5. **Consent Mode v2** (last value per key wins, `update` over `default`):
//!    analytics = `analytics_storage`; personalization =
//!    `personalization_storage`; marketing = `ad_storage`, `ad_user_data` and
//!    `ad_personalization` all granted (it decides marketing as soon as one of
//!    the three is present).
//! 6. Otherwise **denied**: consent is opt-in.
//!
//! `necessary` is always allowed and never identifies anyone.

//!
//! Split by what each part may know: [`state`] (purposes, the resolved
//! state, the stamp) knows nothing else; [`signals`] reads the browser's
//! signals into a state; `loader` reads what the loader gathered from the
//! page (Consent Mode commands folded here, not in the shell); only
//! `minimise` knows events.

mod loader;
mod minimise;
mod signals;
mod state;

pub use loader::{fold_consent_mode, from_loader};
pub use minimise::{MinimisePolicy, Minimised, minimise_with, withdraw};
pub use signals::{ConsentMode, ConsentSignals, ExplicitChoice, GcmValue, TcfSignal, resolve};
pub use state::{Consent, ConsentStamp, POLICY_VERSION, Purpose};
