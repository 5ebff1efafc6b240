//! Contact intent: what a law firm's or a clinic's visitor does when they
//! decide — a click on a phone, SMS, e-mail or messaging-app link, or an
//! appointment booked in an embedded calendar. Classified from the link or
//! the widget's message alone; what leaves the device is the kind (scheme,
//! app, provider), never the number, the address or the invitee.

use crate::url::host_of;

/// The event names the browser sends, also matched by the default rules.
pub const PHONE_LINK_CLICKED: &str = "Phone Link Clicked";
/// Not Segment's "Email Link Clicked": that is a link clicked inside an
/// e-mail (the `email.click` rule), and a newsletter click is no contact.
pub const EMAIL_ADDRESS_CLICKED: &str = "Email Address Clicked";
pub const MESSAGING_LINK_CLICKED: &str = "Messaging Link Clicked";
pub const BOOKING_SCHEDULED: &str = "Booking Scheduled";

/// One contact intent, with only the kind of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// `tel:` or `sms:`.
    Phone(PhoneScheme),
    /// `mailto:`.
    Email,
    Messaging(App),
    Booking(Provider),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneScheme {
    Tel,
    Sms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    WhatsApp,
    Signal,
    Telegram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Calendly,
    CalCom,
}

impl Intent {
    /// The `track` event it is sent as.
    pub fn event(self) -> &'static str {
        match self {
            Intent::Phone(_) => PHONE_LINK_CLICKED,
            Intent::Email => EMAIL_ADDRESS_CLICKED,
            Intent::Messaging(_) => MESSAGING_LINK_CLICKED,
            Intent::Booking(_) => BOOKING_SCHEDULED,
        }
    }

    /// Its one property: `scheme`, `app` or `provider`, and the value.
    pub fn property(self) -> (&'static str, &'static str) {
        match self {
            Intent::Phone(PhoneScheme::Tel) => ("scheme", "tel"),
            Intent::Phone(PhoneScheme::Sms) => ("scheme", "sms"),
            Intent::Email => ("scheme", "mailto"),
            Intent::Messaging(App::WhatsApp) => ("app", "whatsapp"),
            Intent::Messaging(App::Signal) => ("app", "signal"),
            Intent::Messaging(App::Telegram) => ("app", "telegram"),
            Intent::Booking(Provider::Calendly) => ("provider", "calendly"),
            Intent::Booking(Provider::CalCom) => ("provider", "cal.com"),
        }
    }

    /// Every event an intent is sent as: the default rules score them and a
    /// new site is offered them as conversions.
    pub const EVENTS: [&'static str; 4] =
        [PHONE_LINK_CLICKED, EMAIL_ADDRESS_CLICKED, MESSAGING_LINK_CLICKED, BOOKING_SCHEDULED];
}

/// Apps' own URL schemes, and the phone and e-mail ones.
const SCHEMES: [(&str, Intent); 8] = [
    ("tel", Intent::Phone(PhoneScheme::Tel)),
    ("sms", Intent::Phone(PhoneScheme::Sms)),
    ("smsto", Intent::Phone(PhoneScheme::Sms)),
    ("mailto", Intent::Email),
    ("whatsapp", Intent::Messaging(App::WhatsApp)),
    ("sgnl", Intent::Messaging(App::Signal)),
    ("signal", Intent::Messaging(App::Signal)),
    ("tg", Intent::Messaging(App::Telegram)),
];

/// The intent of a clicked link's `href` (as the browser resolved it), if it
/// is one. Only the apps' chat entry points count: a link to the app's own
/// site (`whatsapp.com/download`, `telegram.org`) is a link like any other.
pub fn link(href: &str) -> Option<Intent> {
    let href = href.trim();
    let (scheme, rest) = href.split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    if let Some((_, intent)) = SCHEMES.iter().find(|(s, _)| *s == scheme) {
        return Some(*intent);
    }
    let host = host_of(href)?;
    let after_host = rest.trim_start_matches('/');
    let path = after_host.find(['/', '?', '#']).and_then(|i| after_host.get(i..)).unwrap_or("");
    let app = match host.trim_end_matches('.') {
        "wa.me" | "chat.whatsapp.com" => App::WhatsApp,
        "api.whatsapp.com" | "web.whatsapp.com" if path.starts_with("/send") => App::WhatsApp,
        "signal.me" | "signal.group" => App::Signal,
        "t.me" | "telegram.me" | "telegram.dog" => App::Telegram,
        _ => return None,
    };
    Some(Intent::Messaging(app))
}

/// What a booking widget posted to the page: the sender's `origin` and the
/// fields of `data` that name the message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Message<'a> {
    pub origin: &'a str,
    /// `data.event` (Calendly: `calendly.event_scheduled`).
    pub event: Option<&'a str>,
    /// `data.originator` (Cal.com: `CAL`).
    pub originator: Option<&'a str>,
    /// `data.type` (Cal.com: `bookingSuccessful`, `bookingSuccessfulV2`).
    pub kind: Option<&'a str>,
}

/// The booking a widget's message reports, if it is one and comes from the
/// widget's own origin (any other frame could post the same shape).
pub fn message(m: Message<'_>) -> Option<Intent> {
    let host = m.origin.strip_prefix("https://")?;
    if host.contains(['/', ':', '@']) {
        return None;
    }
    if host == "calendly.com" && m.event == Some("calendly.event_scheduled") {
        return Some(Intent::Booking(Provider::Calendly));
    }
    let cal = host == "cal.com" || host.strip_suffix(".cal.com").is_some_and(|s| !s.is_empty());
    let booked = matches!(m.kind, Some("bookingSuccessful" | "bookingSuccessfulV2"));
    (cal && m.originator == Some("CAL") && booked).then_some(Intent::Booking(Provider::CalCom))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_by_scheme_and_host() {
        assert_eq!(link("tel:+33123456789"), Some(Intent::Phone(PhoneScheme::Tel)));
        assert_eq!(link("TEL:0123"), Some(Intent::Phone(PhoneScheme::Tel)));
        assert_eq!(link("sms:+33600000000?body=hi"), Some(Intent::Phone(PhoneScheme::Sms)));
        assert_eq!(link("mailto:cabinet@example.fr"), Some(Intent::Email));
        assert_eq!(link("https://wa.me/33612345678"), Some(Intent::Messaging(App::WhatsApp)));
        assert_eq!(link("https://api.whatsapp.com/send?phone=336"), Some(Intent::Messaging(App::WhatsApp)));
        assert_eq!(link("https://www.whatsapp.com/download"), None);
        assert_eq!(link("https://signal.me/#p/+33612345678"), Some(Intent::Messaging(App::Signal)));
        assert_eq!(link("https://t.me/cabinet_martin"), Some(Intent::Messaging(App::Telegram)));
        assert_eq!(link("https://telegram.org/faq"), None);
        assert_eq!(link("https://notwa.me/x"), None);
        assert_eq!(link("https://example.fr/contact"), None);
        assert_eq!(link("javascript:void(0)"), None);
        assert_eq!(link(""), None);
    }

    #[test]
    fn bookings_only_from_the_widget_origin() {
        let calendly =
            Message { origin: "https://calendly.com", event: Some("calendly.event_scheduled"), ..Default::default() };
        assert_eq!(message(calendly), Some(Intent::Booking(Provider::Calendly)));
        assert_eq!(message(Message { origin: "https://evil.example", ..calendly }), None);
        assert_eq!(message(Message { event: Some("calendly.date_and_time_selected"), ..calendly }), None);
        let cal = Message {
            origin: "https://app.cal.com",
            originator: Some("CAL"),
            kind: Some("bookingSuccessful"),
            ..Default::default()
        };
        assert_eq!(message(cal), Some(Intent::Booking(Provider::CalCom)));
        assert_eq!(message(Message { origin: "https://cal.com.evil.example", ..cal }), None);
        assert_eq!(message(Message { origin: "http://app.cal.com", ..cal }), None);
        assert_eq!(message(Message { kind: Some("linkReady"), ..cal }), None);
    }
}
