//! Events in the Segment Spec shape, and their strict validation.
//!
//! Untrusted JSON becomes an [`Event`] only through [`Event::parse`], which
//! checks every field against [`Limits`] and names the field and the rule on
//! rejection. Code inside the system takes `Event`, never raw JSON.

use crate::channel::{Channel, ChannelInput, ClickId};
use crate::consent::ConsentStamp;
use crate::error::ValidationError;
use crate::text::{cat, int};
use crate::timestamp::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

/// Segment call types. `screen` is a page view of an app; `group` ties
/// the visitor to an account, whose traits are the visitor's too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Page,
    Screen,
    Track,
    Identify,
    Group,
    Alias,
}

impl EventType {
    /// The Segment name (`page`, `screen`, `track`, `identify`, `group`, `alias`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    /// A view of a page or of an app's screen: a touch of the journey.
    pub fn is_view(self) -> bool {
        matches!(self, EventType::Page | EventType::Screen)
    }

    /// A call whose traits describe the visitor (`identify`, `group`).
    pub fn carries_traits(self) -> bool {
        matches!(self, EventType::Identify | EventType::Group)
    }
}

/// A message id, the de-duplication key at the edge: any non-empty string
/// of at most [`MessageId::MAX_CHARS`] characters, as Segment allows
/// (analytics-node sends `node-next-<ms>-<uuid>`). A UUID is held as its 16
/// bytes and spelled in lower case, so one UUID has one spelling (ids are
/// compared as text in storage); any other id is kept exactly as sent.
/// (UUIDs are parsed by hand: the `uuid` crate depends on wasm-bindgen on
/// wasm32, and the core must not depend on a platform crate.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(Repr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl MessageId {
    /// Segment's bound on a message id.
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if let Some(bytes) = uuid_bytes(text) {
            return Ok(Self(Repr::Uuid(bytes)));
        }
        if text.is_empty() {
            return Err("must not be empty");
        }
        if text.chars().nth(Self::MAX_CHARS).is_some() {
            return Err("must be at most 100 characters");
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(Repr::Text(text.into())))
    }

    /// Random bytes stamped as a version-4, RFC 4122 variant UUID.
    pub fn from_random_bytes(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(Repr::Uuid(bytes))
    }

    /// Whether the id is a UUID (what our browser module sends).
    pub fn is_uuid(&self) -> bool {
        matches!(self.0, Repr::Uuid(_))
    }

    /// The id's text: a UUID in lower-case hyphenated form (without `core::fmt`).
    pub fn to_text(&self) -> String {
        let bytes = match &self.0 {
            Repr::Text(t) => return t.to_string(),
            Repr::Uuid(b) => b,
        };
        let mut s = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            crate::text::push_hex(&mut s, &[*b]);
        }
        s
    }
}

/// The 16 bytes of a UUID in its hyphenated form (`8-4-4-4-12` hex digits,
/// any case), or `None`.
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut bytes = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = (c as char).to_digit(16)? as u8;
        let slot = bytes.get_mut(nibbles / 2)?;
        *slot = (*slot << 4) | v;
        nibbles += 1;
    }
    Some(bytes)
}

/// The order of the ids' text, as storage sorts them (two UUIDs compare by
/// their bytes, which is the same order without spelling them out).
impl Ord for MessageId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Repr::Uuid(a), Repr::Uuid(b)) => a.cmp(b),
            (Repr::Text(a), Repr::Text(b)) => a.cmp(b),
            _ => self.to_text().cmp(&other.to_text()),
        }
    }
}

impl PartialOrd for MessageId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Page {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Campaign {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
}

impl Campaign {
    pub fn is_empty(&self) -> bool {
        *self == Campaign::default()
    }
}

/// Ad-platform click ids, at most one value each. Carried only with
/// marketing consent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClickIds([Option<String>; ClickId::ALL.len()]);

impl ClickIds {
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    pub fn get(&self, id: ClickId) -> Option<&str> {
        self.0.get(id as usize).and_then(|v| v.as_deref())
    }

    pub fn set(&mut self, id: ClickId, value: Option<String>) {
        if let Some(slot) = self.0.get_mut(id as usize) {
            *slot = value;
        }
    }

    /// The ids present, in [`ClickId::ALL`]'s order.
    pub fn present(&self) -> impl Iterator<Item = (ClickId, &str)> {
        ClickId::ALL.into_iter().filter_map(|id| self.get(id).map(|v| (id, v)))
    }
}

impl Serialize for ClickIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (id, v) in self.present() {
            m.serialize_entry(id.name(), v)?;
        }
        m.end()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Context {
    #[serde(skip_serializing_if = "is_default")]
    pub page: Page,
    #[serde(skip_serializing_if = "Campaign::is_empty")]
    pub campaign: Campaign,
    #[serde(skip_serializing_if = "ClickIds::is_empty")]
    pub click_ids: ClickIds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(rename = "userAgent", skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A channel declared by a server/offline source (phone, trade show…).
    /// Only authenticated server events may carry it; the browser never does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// The visitor's arm in the site's CTA holdout test. The browser says
    /// which CTAs it showed; the collector re-derives it from the visitor id
    /// and the site's percent and keeps only its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cta_arm: Option<crate::experiment::Arm>,
}

impl Context {
    /// The non-empty fields as wire JSON (see [`Event::to_json`]).
    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let p = &self.page;
        let mut page = Map::new();
        for (k, v) in [("url", &p.url), ("path", &p.path), ("referrer", &p.referrer), ("title", &p.title)] {
            put(&mut page, k, v);
        }
        let c = &self.campaign;
        let mut campaign = Map::new();
        for (k, v) in [
            ("utm_source", &c.utm_source),
            ("utm_medium", &c.utm_medium),
            ("utm_campaign", &c.utm_campaign),
            ("utm_term", &c.utm_term),
            ("utm_content", &c.utm_content),
        ] {
            put(&mut campaign, k, v);
        }
        let click_ids: Map<String, Value> =
            self.click_ids.present().map(|(id, v)| (id.name().to_owned(), Value::String(v.to_owned()))).collect();
        for (name, sub) in [("page", page), ("campaign", campaign), ("click_ids", click_ids)] {
            if !sub.is_empty() {
                m.insert(name.into(), Value::Object(sub));
            }
        }
        put(&mut m, "locale", &self.locale);
        put(&mut m, "userAgent", &self.user_agent);
        if let Some(c) = &self.channel {
            m.insert("channel".into(), Value::String(c.name().into()));
        }
        if let Some(a) = self.cta_arm {
            m.insert("cta_arm".into(), Value::String(a.as_str().into()));
        }
        m
    }
}

fn put(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.into(), Value::String(v.clone()));
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One validated event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    #[serde(skip_serializing_if = "is_default")]
    pub context: Context,
    #[serde(rename = "messageId")]
    pub message_id: MessageId,
    #[serde(rename = "anonymousId", skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(rename = "previousId", skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    /// On a `group`: the account the visitor belongs to.
    #[serde(rename = "groupId", skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// On an `identify` from a browser: the site's proof that its userId (or
    /// its `email_sha256`) is this person's — lowercase hex of HMAC-SHA256
    /// under the site's identity secret. Only a proven identity may join
    /// another profile; the collector checks it and never stores it.
    #[serde(rename = "identitySignature", skip_serializing_if = "Option::is_none")]
    pub identity_signature: Option<String>,
    pub timestamp: Timestamp,
    #[serde(rename = "sentAt", skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// The consent under which the event was captured, with its policy version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentStamp>,
    /// Derived by `channel::classify`; never taken from the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

/// Documented bounds on untrusted events. Lengths are in UTF-8 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Event names, page titles, campaign fields, locale, generic strings.
    pub max_string: usize,
    /// `context.page.url`, `context.page.referrer`, `context.page.path`.
    pub max_url: usize,
    /// `anonymousId`, `userId`, `previousId`, click ids.
    pub max_id: usize,
    /// `context.userAgent`.
    pub max_user_agent: usize,
    /// String values inside `properties`/`traits`.
    pub max_property_string: usize,
    /// Keys per object inside `properties`/`traits` (and items per array).
    pub max_keys: usize,
    /// Property key length.
    pub max_key: usize,
    /// Nesting depth below `properties`/`traits` (1 = flat).
    pub max_depth: usize,
    /// How far in the future `timestamp` may be (clock skew).
    pub max_future_ms: i64,
    /// How far in the past `timestamp` may be (late or replayed delivery).
    pub max_age_ms: i64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_string: 256,
        max_url: 2048,
        max_id: 128,
        max_user_agent: 512,
        max_property_string: 1024,
        max_keys: 50,
        max_key: 64,
        max_depth: 3,
        max_future_ms: 5 * 60 * 1000,
        max_age_ms: 30 * Timestamp::MILLIS_PER_DAY,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary. What the browser captures (a title, a campaign name)
/// is clipped to the collector's limit with this before it is sent: a field
/// over the limit would have the whole event refused, and a cut inside a
/// multi-byte character would not be UTF-8.
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Top-level fields accepted and dropped: Segment libraries send them, we need
/// none of them (`channel` is derived by us, never trusted from the client;
/// `receivedAt` is ours to set; `originalTimestamp` only corrects the clock).
const IGNORED_TOP: [&str; 7] =
    ["integrations", "channel", "version", "receivedAt", "_metadata", "category", "originalTimestamp"];

type Res<T> = Result<T, ValidationError>;

fn uint(n: usize) -> String {
    int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn bytes_rule(max: usize) -> String {
    cat(&["must be at most ", &uint(max), " bytes"])
}

fn err<T>(field: impl Into<String>, rule: impl Into<String>) -> Res<T> {
    Err(ValidationError::new(field, rule))
}

impl Event {
    /// Validates untrusted JSON into an event. `now` is the receiver's clock,
    /// used for the skew rules.
    pub fn parse(raw: &Value, limits: &Limits, now: Timestamp) -> Res<Event> {
        Event::parse_at(raw, limits, Some(now))
    }

    /// Reads back an event this system stored itself (a visitor's ledger):
    /// every rule of [`Event::parse`] under [`Limits::DEFAULT`] except the
    /// clock-skew and age rules, which held on arrival and must not depend on
    /// how old the event is now.
    pub fn from_stored(json: &Value) -> Res<Event> {
        Event::parse_at(json, &Limits::DEFAULT, None)
    }

    /// `now: None` skips the timestamp's skew and age rules (trusted input).
    fn parse_at(raw: &Value, limits: &Limits, now: Option<Timestamp>) -> Res<Event> {
        let Some(obj) = raw.as_object() else {
            return err("event", "must be a JSON object");
        };
        for key in obj.keys() {
            let known = matches!(
                key.as_str(),
                "type"
                    | "event"
                    | "name"
                    | "properties"
                    | "traits"
                    | "context"
                    | "messageId"
                    | "anonymousId"
                    | "userId"
                    | "previousId"
                    | "groupId"
                    | "identitySignature"
                    | "timestamp"
                    | "sentAt"
                    | "consent"
            ) || IGNORED_TOP.contains(&key.as_str());
            if !known {
                return err(key.as_str(), "unknown field");
            }
        }
        let kind = match obj.get("type") {
            None | Some(Value::Null) => return err("type", "is required"),
            Some(Value::String(s)) => match s.as_str() {
                "page" => EventType::Page,
                "screen" => EventType::Screen,
                "track" => EventType::Track,
                "identify" => EventType::Identify,
                "group" => EventType::Group,
                "alias" => EventType::Alias,
                _ => return err("type", "must be one of page, screen, track, identify, group, alias"),
            },
            Some(_) => return err("type", "must be a string"),
        };
        let message_id = match obj.get("messageId") {
            None | Some(Value::Null) => return err("messageId", "is required"),
            Some(Value::String(s)) => MessageId::parse(s).map_err(|r| ValidationError::new("messageId", r))?,
            Some(_) => return err("messageId", "must be a string"),
        };
        let sent_at = opt_time(obj, "sentAt")?;
        let timestamp = match (opt_time(obj, "timestamp")?, now) {
            (Some(t), _) => t,
            // What this system stored always carries its time.
            (None, None) => return err("timestamp", "is required"),
            // Segment's rule: without a timestamp, the time it was received,
            // less how long the message waited on the sender's own clock.
            (None, Some(received)) => match (opt_time(obj, "originalTimestamp")?, sent_at) {
                (Some(original), Some(sent)) => sent
                    .millis()
                    .checked_sub(original.millis())
                    .and_then(|waited| received.millis().checked_sub(waited))
                    .and_then(Timestamp::from_millis)
                    .ok_or_else(|| ValidationError::new("originalTimestamp", "must not be after sentAt by years"))?,
                (Some(original), None) => original,
                (None, _) => received,
            },
        };
        if let Some(now) = now
            && timestamp.since(now) > limits.max_future_ms
        {
            let rule = cat(&["must not be more than ", &int(limits.max_future_ms / 1000), " s in the future"]);
            return err("timestamp", rule);
        }
        if let Some(now) = now
            && now.since(timestamp) > limits.max_age_ms
        {
            let rule = cat(&[
                "must not be more than ",
                &int(limits.max_age_ms / Timestamp::MILLIS_PER_HOUR),
                " h in the past",
            ]);
            return err("timestamp", rule);
        }
        let event = opt_name(obj, "event", limits.max_string)?;
        let name = opt_name(obj, "name", limits.max_string)?;
        let anonymous_id = opt_name(obj, "anonymousId", limits.max_id)?;
        let user_id = opt_name(obj, "userId", limits.max_id)?;
        let previous_id = opt_name(obj, "previousId", limits.max_id)?;
        let group_id = opt_name(obj, "groupId", limits.max_id)?;
        let identity_signature = opt_str(obj, "identitySignature", 64)?;
        if let Some(sig) = &identity_signature {
            if kind != EventType::Identify {
                return err("identitySignature", "is only allowed on identify events");
            }
            if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return err("identitySignature", "must be 64 lowercase hex digits (HMAC-SHA256)");
            }
        }
        let properties = opt_map(obj, "properties", limits)?;
        let traits = opt_map(obj, "traits", limits)?;

        match kind {
            EventType::Track if event.is_none() => return err("event", "is required for a track event"),
            EventType::Track => {}
            _ if event.is_some() => return err("event", "is only allowed on track events"),
            _ => {}
        }
        if name.is_some() && !kind.is_view() {
            return err("name", "is only allowed on page and screen events");
        }
        let takes_properties = kind.is_view() || kind == EventType::Track;
        if !properties.is_empty() && !takes_properties {
            return err("properties", "is only allowed on page, screen and track events");
        }
        if !traits.is_empty() && !kind.carries_traits() {
            return err("traits", "is only allowed on identify and group events");
        }
        match (kind, &group_id) {
            (EventType::Group, None) => return err("groupId", "is required for a group event"),
            (EventType::Group, Some(_)) | (_, None) => {}
            (_, Some(_)) => return err("groupId", "is only allowed on group events"),
        }
        match kind {
            EventType::Alias => {
                if user_id.is_none() {
                    return err("userId", "is required for an alias event");
                }
                if previous_id.is_none() {
                    return err("previousId", "is required for an alias event");
                }
            }
            _ if previous_id.is_some() => return err("previousId", "is only allowed on alias events"),
            EventType::Page => {} // an id-less page view is the cookieless count
            _ if anonymous_id.is_none() && user_id.is_none() => {
                return err("anonymousId", "anonymousId or userId is required");
            }
            _ => {}
        }
        let mut context = match obj.get("context") {
            None | Some(Value::Null) => Context::default(),
            Some(v) => parse_context(v, limits)?,
        };
        let mut properties = properties;
        if kind.is_view() {
            page_from_properties(&mut context.page, &mut properties, limits);
        }
        let consent = match obj.get("consent") {
            None | Some(Value::Null) => None,
            Some(v) => Some(ConsentStamp::parse(v).map_err(|rule| ValidationError::new("consent", rule))?),
        };
        Ok(Event {
            kind,
            event,
            name,
            properties,
            traits,
            context,
            message_id,
            anonymous_id,
            user_id,
            previous_id,
            group_id,
            identity_signature,
            timestamp,
            sent_at,
            consent,
            channel: None,
        })
    }

    /// The event as its wire JSON, the same value `serde_json::to_value`
    /// gives (a test holds them equal on every vector). Built by hand so the
    /// browser serialises events without serde (the browser's own `JSON`
    /// writes the text).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.kind.as_str().into()));
        put(&mut m, "event", &self.event);
        put(&mut m, "name", &self.name);
        for (k, v) in [("properties", &self.properties), ("traits", &self.traits)] {
            if !v.is_empty() {
                m.insert(k.into(), Value::Object(v.clone()));
            }
        }
        let ctx = self.context.to_json();
        if !ctx.is_empty() {
            m.insert("context".into(), Value::Object(ctx));
        }
        m.insert("messageId".into(), Value::String(self.message_id.to_text()));
        put(&mut m, "anonymousId", &self.anonymous_id);
        put(&mut m, "userId", &self.user_id);
        put(&mut m, "previousId", &self.previous_id);
        put(&mut m, "groupId", &self.group_id);
        put(&mut m, "identitySignature", &self.identity_signature);
        m.insert("timestamp".into(), Value::String(self.timestamp.to_rfc3339()));
        if let Some(t) = self.sent_at {
            m.insert("sentAt".into(), Value::String(t.to_rfc3339()));
        }
        if let Some(c) = &self.consent {
            m.insert("consent".into(), c.to_json());
        }
        if let Some(c) = &self.channel {
            m.insert("channel".into(), Value::String(c.name().into()));
        }
        Value::Object(m)
    }

    /// Fills `channel` from the event's campaign, click ids, referrer and
    /// declared channel under the site's rules.
    pub fn derive_channel(&mut self, rules: &crate::channel::ChannelRules) {
        let input = ChannelInput::from(&*self);
        self.channel = Some(crate::channel::classify(&input, rules));
    }
}

impl From<&Event> for ChannelInput {
    fn from(e: &Event) -> ChannelInput {
        let c = &e.context;
        ChannelInput {
            utm_source: c.campaign.utm_source.clone(),
            utm_medium: c.campaign.utm_medium.clone(),
            utm_campaign: c.campaign.utm_campaign.clone(),
            click_ids: c.click_ids.present().map(|(id, _)| id).collect(),
            referrer: c.page.referrer.clone(),
            page_url: c.page.url.clone(),
            declared: c.channel.clone(),
        }
    }
}

fn str_field(obj: &Map<String, Value>, field: &str, path: &str, max: usize) -> Res<Option<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > max {
                return err(path, bytes_rule(max));
            }
            if s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
                return err(path, "must not contain control characters");
            }
            Ok(Some(s.clone()))
        }
        Some(_) => err(path, "must be a string"),
    }
}

fn opt_str(obj: &Map<String, Value>, field: &str, max: usize) -> Res<Option<String>> {
    str_field(obj, field, field, max)
}

fn opt_time(obj: &Map<String, Value>, field: &str) -> Res<Option<Timestamp>> {
    match opt_str(obj, field, usize::MAX)? {
        None => Ok(None),
        Some(s) => Timestamp::parse(&s).map(Some).map_err(|r| ValidationError::new(field, r)),
    }
}

/// A name or id: non-empty, no control characters, no surrounding blanks.
fn opt_name(obj: &Map<String, Value>, field: &str, max: usize) -> Res<Option<String>> {
    let value = opt_str(obj, field, max)?;
    if let Some(s) = &value {
        if s.trim().is_empty() {
            return err(field, "must not be empty");
        }
        if s.chars().any(char::is_control) {
            return err(field, "must not contain control characters");
        }
    }
    Ok(value)
}

fn opt_map(obj: &Map<String, Value>, field: &str, limits: &Limits) -> Res<Map<String, Value>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(v @ Value::Object(m)) => {
            check_value(v, field, 1, limits)?;
            Ok(m.clone())
        }
        Some(_) => err(field, "must be an object"),
    }
}

/// Checks one value inside `properties`/`traits`: depth, sizes, key shapes.
fn check_value(v: &Value, path: &str, depth: usize, limits: &Limits) -> Res<()> {
    match v {
        Value::String(s) if s.len() > limits.max_property_string => err(path, bytes_rule(limits.max_property_string)),
        Value::Array(_) | Value::Object(_) if depth > limits.max_depth => {
            err(path, cat(&["nesting deeper than ", &uint(limits.max_depth), " levels"]))
        }
        Value::Array(items) => {
            if items.len() > limits.max_keys {
                return err(path, cat(&["must have at most ", &uint(limits.max_keys), " items"]));
            }
            for (i, item) in items.iter().enumerate() {
                check_value(item, &cat(&[path, "[", &uint(i), "]"]), depth + 1, limits)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            if map.len() > limits.max_keys {
                return err(path, cat(&["must have at most ", &uint(limits.max_keys), " keys"]));
            }
            for (key, item) in map {
                let sub = cat(&[path, ".", key]);
                if key.is_empty() || key.len() > limits.max_key {
                    return err(sub, cat(&["keys must be 1 to ", &uint(limits.max_key), " bytes"]));
                }
                if key.chars().any(char::is_control) {
                    return err(sub, "keys must not contain control characters");
                }
                check_value(item, &sub, depth + 1, limits)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Segment's page properties (`url`, `path`, `referrer`, `title`) name the
/// page a server library reports, which sends no `context.page`: each one
/// the context lacks moves there when it is valid as the context's field
/// would be (then minimised like it), and leaves `properties` either way.
fn page_from_properties(page: &mut Page, properties: &mut Map<String, Value>, limits: &Limits) {
    let slots: [(&str, &mut Option<String>, usize); 4] = [
        ("url", &mut page.url, limits.max_url),
        ("path", &mut page.path, limits.max_url),
        ("referrer", &mut page.referrer, limits.max_url),
        ("title", &mut page.title, limits.max_string),
    ];
    for (field, slot, max) in slots {
        let Some(Value::String(v)) = properties.get(field) else { continue };
        let valid = v.len() <= max
            && !v.chars().any(char::is_control)
            && match field {
                "path" => v.starts_with('/'),
                "title" => true,
                _ => crate::url::is_http_url(v),
            };
        if let Some(Value::String(v)) = properties.remove(field)
            && valid
            && slot.is_none()
        {
            *slot = Some(v);
        }
    }
}

/// An object of the context. Keys we do not know (Segment's `library`,
/// `device`, `ip`, a library's own) are dropped, never refused: the context
/// keeps only the fields read below (minimisation), so a raw IP is never kept.
fn sub_object<'a>(v: &'a Value, path: &str) -> Res<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| ValidationError::new(path, "must be an object"))
}

fn parse_context(v: &Value, limits: &Limits) -> Res<Context> {
    let m = sub_object(v, "context")?;
    let mut ctx = Context::default();
    if let Some(p) = m.get("page").filter(|p| !p.is_null()) {
        let p = sub_object(p, "context.page")?;
        ctx.page = Page {
            url: str_field(p, "url", "context.page.url", limits.max_url)?,
            path: str_field(p, "path", "context.page.path", limits.max_url)?,
            referrer: str_field(p, "referrer", "context.page.referrer", limits.max_url)?,
            title: str_field(p, "title", "context.page.title", limits.max_string)?,
        };
        // `search` (Segment's query string) is accepted but never kept: the
        // sanitised `url` already carries what may be kept of it.
        str_field(p, "search", "context.page.search", limits.max_url)?;
        for (field, value) in [("url", &ctx.page.url), ("referrer", &ctx.page.referrer)] {
            if value.as_ref().is_some_and(|u| !u.is_empty() && !crate::url::is_http_url(u)) {
                return err(cat(&["context.page.", field]), "must be an absolute http(s) URL");
            }
        }
        if ctx.page.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
            return err("context.page.path", "must start with /");
        }
    }
    if let Some(c) = m.get("campaign").filter(|c| !c.is_null()) {
        // Segment libraries name these source/medium/name/term/content.
        let c = sub_object(c, "context.campaign")?;
        let pick = |utm: &str, alias: &str| -> Res<Option<String>> {
            let a = str_field(c, utm, &cat(&["context.campaign.", utm]), limits.max_string)?;
            let b = str_field(c, alias, &cat(&["context.campaign.", alias]), limits.max_string)?;
            Ok(a.or(b).filter(|s| !s.trim().is_empty()))
        };
        ctx.campaign = Campaign {
            utm_source: pick("utm_source", "source")?,
            utm_medium: pick("utm_medium", "medium")?,
            utm_campaign: pick("utm_campaign", "name")?,
            utm_term: pick("utm_term", "term")?,
            utm_content: pick("utm_content", "content")?,
        };
    }
    if let Some(c) = m.get("click_ids").filter(|c| !c.is_null()) {
        let c = sub_object(c, "context.click_ids")?;
        for id in ClickId::ALL {
            let value = str_field(c, id.name(), &cat(&["context.click_ids.", id.name()]), limits.max_id)?;
            ctx.click_ids.set(id, value.filter(|s| !s.trim().is_empty()));
        }
    }
    ctx.locale = str_field(m, "locale", "context.locale", 35)?;
    ctx.user_agent = str_field(m, "userAgent", "context.userAgent", limits.max_user_agent)?;
    ctx.channel = match m.get("channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Channel::parse(s).map_err(|r| ValidationError::new("context.channel", r))?),
        Some(_) => return err("context.channel", "must be a string"),
    };
    ctx.cta_arm = match m.get("cta_arm") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(crate::experiment::Arm::parse)
                .ok_or_else(|| ValidationError::new("context.cta_arm", "must be `treated` or `holdout`"))?,
        ),
    };
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::{Event, Limits, MessageId, clip};
    use crate::Timestamp;

    #[test]
    fn clipped_text_is_within_the_limit_and_whole_characters() {
        // 88 Japanese characters are 264 bytes: over the title limit.
        let title = "法律事務所".repeat(18);
        let c = clip(&title, Limits::DEFAULT.max_string);
        assert_eq!(c.len(), 255, "85 characters of 3 bytes");
        assert!(title.starts_with(c));
        assert_eq!(clip("Ελληνικά", 3), "Ε");
        assert_eq!(clip("Кириллица", 1), "");
        assert_eq!(clip("short", 256), "short");
        assert_eq!(clip("🙂🙂", 7), "🙂");
    }

    #[test]
    fn stored_events_are_read_without_the_clock_rules() {
        let raw = serde_json::json!({
            "type": "page",
            "messageId": "6f1c2a1e-8a43-4c36-9b8e-0a1b2c3d4e5f",
            "anonymousId": "a1",
            "timestamp": "2001-01-01T00:00:00.000Z",
        });
        let now = Timestamp::parse("2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(Event::parse(&raw, &Limits::DEFAULT, now).unwrap_err().field, "timestamp");
        let e = Event::from_stored(&raw).unwrap();
        assert_eq!(e.timestamp, Timestamp::parse("2001-01-01T00:00:00.000Z").unwrap());
        // Every other rule still holds.
        let mut bad = raw.clone();
        bad["event"] = "not on a page".into();
        assert_eq!(Event::from_stored(&bad).unwrap_err().field, "event");
        assert!(Event::from_stored(&serde_json::json!({"type": "page"})).is_err());
    }

    #[test]
    fn uuids_have_one_spelling_and_other_ids_are_kept_as_sent() {
        let id = MessageId::parse("6F1C2A1E-8A43-4C36-9B8E-0A1B2C3D4E5F").unwrap();
        assert!(id.is_uuid());
        assert_eq!(id.to_string(), "6f1c2a1e-8a43-4c36-9b8e-0a1b2c3d4e5f");
        assert_eq!(id, MessageId::parse("6f1c2a1e-8a43-4c36-9b8e-0a1b2c3d4e5f").unwrap());
        // Near-UUIDs are ids like any other, not mangled into one.
        for text in [
            "6f1c2a1e08a43-4c36-9b8e-0a1b2c3d4e5f",
            "6f1c2a1e-8a43-4c36-9b8e-0a1b2c3d4e5",
            "node-next-1733346000000-Ab",
        ] {
            let id = MessageId::parse(text).unwrap();
            assert!(!id.is_uuid());
            assert_eq!(id.to_text(), text);
        }
        assert_eq!(MessageId::parse(&"é".repeat(100)).unwrap().to_text().chars().count(), 100);
        assert_eq!(MessageId::parse(&"é".repeat(101)), Err("must be at most 100 characters"));
        assert_eq!(MessageId::parse(""), Err("must not be empty"));
        assert_eq!(MessageId::parse("a\u{7}b"), Err("must not contain control characters"));
        let v4 = MessageId::from_random_bytes([0xff; 16]).to_string();
        assert_eq!(v4, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }
}
