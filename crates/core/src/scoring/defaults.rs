//! The default rule set of `docs/scoring.md`, built in Rust so the browser
//! has it without a TOML parser or a fetch. `crates/core/rules/default.toml`
//! is the readable copy; a test holds the two equal.

use super::glob::Glob;
use super::rules::{Action, Decay, Frequency, Matcher, Rules, Stage, Tier, VelocityRules, assemble};
use crate::Timestamp;
use crate::intent;

use Frequency::{OncePerSession as Session, OncePerVisitor as Visitor, PerDay};

enum M {
    Event(&'static str),
    Page(&'static str),
    Element(&'static str),
}

/// (id, label, points, frequency, matchers), as in `default.toml`.
const ACTIONS: [(&str, &str, i64, Frequency, &[M]); 25] = [
    ("web.home_view", "home page view", 1, Session, &[M::Page("/")]),
    ("web.blog_read", "blog article read", 3, PerDay(5), &[M::Page("/blog/**")]),
    ("web.pricing_view", "pricing page view", 15, Session, &[M::Page("/pricing"), M::Page("/pricing/**")]),
    ("web.buy_click", "click on Buy / Book", 25, Session, &[M::Element("buy"), M::Element("book")]),
    ("web.phone_click", "click on a phone or SMS link", 20, Session, &[M::Event(intent::PHONE_LINK_CLICKED)]),
    ("web.email_click", "click on an e-mail address", 15, Session, &[M::Event(intent::EMAIL_ADDRESS_CLICKED)]),
    (
        "web.messaging_click",
        "click on a WhatsApp, Signal or Telegram link",
        20,
        Session,
        &[M::Event(intent::MESSAGING_LINK_CLICKED)],
    ),
    (
        "web.booking",
        "appointment booked in an embedded calendar",
        40,
        PerDay(1),
        &[M::Event(intent::BOOKING_SCHEDULED)],
    ),
    ("email.open", "email open", 2, PerDay(3), &[M::Event("Email Opened")]),
    ("email.click", "email link click", 8, PerDay(3), &[M::Event("Email Link Clicked")]),
    ("email.reply", "direct reply to an email", 20, PerDay(1), &[]),
    ("social.follow", "follows the company page", 3, Visitor, &[]),
    ("social.comment", "comment on a post", 10, PerDay(2), &[]),
    ("social.message", "private message", 18, PerDay(1), &[]),
    ("event.webinar_register", "webinar registration", 12, PerDay(1), &[]),
    ("event.webinar_attend", "webinar attendance", 25, PerDay(1), &[]),
    ("event.webinar_question", "question asked during a webinar", 35, PerDay(1), &[]),
    ("offline.booth_visit", "visit at a trade-show booth", 8, PerDay(1), &[]),
    ("offline.qr_scan", "QR scan / brochure taken", 15, PerDay(1), &[]),
    ("offline.contact_left", "leaves contact details", 20, PerDay(1), &[]),
    ("offline.meeting_request", "asks for a sales meeting", 40, PerDay(1), &[]),
    ("email.unsubscribe", "newsletter unsubscribe", -30, Visitor, &[M::Event("Unsubscribed")]),
    ("email.spam_report", "email marked as spam", -40, Visitor, &[M::Event("Email Marked as Spam")]),
    ("ad.hide", "unsubscribe / hide on an ad", -15, PerDay(1), &[]),
    ("offline.call_refused", "explicitly refuses a sales call", -25, PerDay(1), &[]),
];

impl Rules {
    /// The rule set documented in `docs/scoring.md` (`crates/core/rules/default.toml`).
    pub fn default_rules() -> Rules {
        rules()
    }
}

fn rules() -> Rules {
    let parsed = ACTIONS
        .iter()
        .map(|(id, label, points, frequency, matchers)| {
            let action = Action {
                id: (*id).to_owned(),
                label: Some((*label).to_owned()),
                points: *points,
                frequency: *frequency,
            };
            let matchers = matchers
                .iter()
                .map(|m| match m {
                    M::Event(e) => Matcher::Event((*e).to_owned()),
                    M::Element(e) => Matcher::Element((*e).to_owned()),
                    M::Page(p) => Matcher::Page(Glob::compile(p)),
                })
                .collect();
            (action, matchers)
        })
        .collect();
    let (actions, by_event, by_element, pages) = assemble(parsed);
    Rules {
        version: "default-2".to_owned(),
        session_timeout_ms: 30 * 60_000,
        actions,
        by_event,
        by_element,
        pages,
        fit: Vec::new(),
        decay: Decay::Linear { points_milli: 2000, period_ms: 7 * Timestamp::MILLIS_PER_DAY },
        tiers: [("cold", 0), ("warm", 26), ("hot", 51), ("very_hot", 76)]
            .into_iter()
            .map(|(id, min)| Tier { id: id.to_owned(), min })
            .collect(),
        velocity: VelocityRules::DEFAULT,
        // `qualified` at the third tier's threshold (hot, 51).
        stages: [
            ("lead", "Lead", None, true),
            ("qualified", "Qualified", Some(51), false),
            ("client", "Client", None, false),
        ]
        .into_iter()
        .map(|(id, label, min_score, any_conversion)| Stage {
            id: id.to_owned(),
            label: label.to_owned(),
            min_score,
            any_conversion,
        })
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_round_trip_through_json() {
        let r = Rules::default_rules();
        assert_eq!(Rules::from_json_value(&r.to_json()), Ok(r));
    }

    #[cfg(feature = "toml")]
    #[test]
    fn default_toml_file_is_the_built_in_set() {
        let file = Rules::from_toml(include_str!("../../rules/default.toml")).unwrap();
        assert_eq!(file, Rules::default_rules());
    }

    #[test]
    fn default_set_has_the_doc_tables() {
        let r = Rules::default_rules();
        assert_eq!(r.actions.iter().filter(|a| a.points > 0).count(), 21);
        assert_eq!(r.actions.iter().filter(|a| a.points < 0).count(), 4);
        assert_eq!(r.tier_ids().collect::<Vec<_>>(), ["cold", "warm", "hot", "very_hot"]);
        let stages: Vec<_> = r.stages().iter().map(|s| (s.id(), s.min_score(), s.any_conversion())).collect();
        assert_eq!(stages, [("lead", None, true), ("qualified", Some(51), false), ("client", None, false)]);
    }
}
