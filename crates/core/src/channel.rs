//! Channel classification: GA4's default channel groups, from UTM parameters,
//! ad click ids, the referrer and a declared (server/offline) channel, with
//! per-site overrides checked first.
//!
//! Order of decision (first match wins), after the site's overrides:
//! 1. a declared channel (authenticated server events only);
//! 2. a campaign (`utm_*`) — GA4's default channel group rules on
//!    source/medium/campaign;
//! 3. ad click ids without a campaign: `gclid`/`gbraid`/`wbraid`/`msclkid` →
//!    Paid Search, `li_fat_id`/`ttclid` → Paid Social. `fbclid` alone is *not*
//!    paid: Meta adds it to organic shares too, so it counts as the referrer;
//! 4. the referrer's host: a search engine → Organic Search, a social network →
//!    Organic Social, a video site → Organic Video, a site's own host or none →
//!    Direct, any other → Referral;
//! 5. otherwise Unassigned.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A channel group. GA4's default names, plus site-defined custom groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Direct,
    OrganicSearch,
    PaidSearch,
    OrganicSocial,
    PaidSocial,
    OrganicVideo,
    PaidVideo,
    OrganicShopping,
    PaidShopping,
    Display,
    PaidOther,
    CrossNetwork,
    Email,
    Affiliates,
    Referral,
    Sms,
    Audio,
    MobilePush,
    Offline,
    Unassigned,
    /// A site-defined group (1–64 bytes, not a default name).
    Custom(String),
}

const NAMES: [(Channel, &str); 20] = [
    (Channel::Direct, "Direct"),
    (Channel::OrganicSearch, "Organic Search"),
    (Channel::PaidSearch, "Paid Search"),
    (Channel::OrganicSocial, "Organic Social"),
    (Channel::PaidSocial, "Paid Social"),
    (Channel::OrganicVideo, "Organic Video"),
    (Channel::PaidVideo, "Paid Video"),
    (Channel::OrganicShopping, "Organic Shopping"),
    (Channel::PaidShopping, "Paid Shopping"),
    (Channel::Display, "Display"),
    (Channel::PaidOther, "Paid Other"),
    (Channel::CrossNetwork, "Cross-network"),
    (Channel::Email, "Email"),
    (Channel::Affiliates, "Affiliates"),
    (Channel::Referral, "Referral"),
    (Channel::Sms, "SMS"),
    (Channel::Audio, "Audio"),
    (Channel::MobilePush, "Mobile Push Notifications"),
    (Channel::Offline, "Offline"),
    (Channel::Unassigned, "Unassigned"),
];

impl Channel {
    /// A channel from its display name; an unknown name is a custom group.
    pub fn parse(name: &str) -> Result<Channel, &'static str> {
        if let Some((c, _)) = NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
            return Ok(c.clone());
        }
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.len() > 64 || trimmed != name || name.chars().any(char::is_control) {
            return Err("must be a channel group name of 1 to 64 bytes without surrounding spaces");
        }
        Ok(Channel::Custom(name.to_owned()))
    }

    pub fn name(&self) -> &str {
        match self {
            Channel::Custom(s) => s,
            c => NAMES.iter().find(|(k, _)| k == c).map(|(_, n)| *n).unwrap_or("Unassigned"),
        }
    }

    /// Channels bought from an ad platform: their detail needs marketing consent.
    pub fn is_paid(&self) -> bool {
        matches!(
            self,
            Channel::PaidSearch
                | Channel::PaidSocial
                | Channel::PaidVideo
                | Channel::PaidShopping
                | Channel::Display
                | Channel::PaidOther
                | Channel::CrossNetwork
                | Channel::Affiliates
        )
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Channel::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An ad platform's click id: the query parameter a click on an ad adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClickId {
    Gclid,
    Gbraid,
    Wbraid,
    Fbclid,
    Msclkid,
    LiFatId,
    Ttclid,
}

impl ClickId {
    pub const ALL: [ClickId; 7] = [
        ClickId::Gclid,
        ClickId::Gbraid,
        ClickId::Wbraid,
        ClickId::Fbclid,
        ClickId::Msclkid,
        ClickId::LiFatId,
        ClickId::Ttclid,
    ];

    /// The query parameter's name, which is also its wire key.
    pub fn name(self) -> &'static str {
        match self {
            ClickId::Gclid => "gclid",
            ClickId::Gbraid => "gbraid",
            ClickId::Wbraid => "wbraid",
            ClickId::Fbclid => "fbclid",
            ClickId::Msclkid => "msclkid",
            ClickId::LiFatId => "li_fat_id",
            ClickId::Ttclid => "ttclid",
        }
    }

    pub fn parse(name: &str) -> Option<ClickId> {
        ClickId::ALL.into_iter().find(|c| c.name() == name)
    }

    /// A search ad's click (Google's three, Microsoft's).
    fn is_search(self) -> bool {
        matches!(self, ClickId::Gclid | ClickId::Gbraid | ClickId::Wbraid | ClickId::Msclkid)
    }

    /// A paid social click. `fbclid` is not one: Meta adds it to organic
    /// link clicks too.
    fn is_paid_social(self) -> bool {
        matches!(self, ClickId::LiFatId | ClickId::Ttclid)
    }
}

impl<'de> Deserialize<'de> for ClickId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ClickId::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown click id `{s}`")))
    }
}

/// What classification looks at, already extracted from an event
/// (`event` builds it: this module knows nothing of events).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelInput {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    /// The click ids present.
    pub click_ids: Vec<ClickId>,
    pub referrer: Option<String>,
    /// The page's own URL, so a referrer from the same site counts as Direct.
    pub page_url: Option<String>,
    pub declared: Option<Channel>,
}

/// A site's override: every given condition must hold (case-insensitive;
/// `*` alone matches anything present).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub medium: Option<String>,
    #[serde(default)]
    pub campaign_contains: Option<String>,
    #[serde(default)]
    pub referrer_host: Option<String>,
    pub channel: Channel,
}

/// Per-site classification settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelRules {
    /// Checked in order before the defaults.
    pub overrides: Vec<Override>,
    /// Hosts that are the site itself (besides the page's own host): a
    /// referrer from them is internal navigation, i.e. Direct.
    pub internal_hosts: Vec<String>,
}

const SEARCH: &[&str] = &[
    "google",
    "bing",
    "yahoo",
    "duckduckgo",
    "baidu",
    "yandex",
    "ecosia",
    "qwant",
    "startpage",
    "search.brave",
    "ask",
    "naver",
    "seznam",
    "aol",
    "lilo",
    "perplexity",
    "chatgpt",
];
const SOCIAL: &[&str] = &[
    "facebook",
    "fb",
    "instagram",
    "linkedin",
    "lnkd",
    "twitter",
    "t.co",
    "x.com",
    "tiktok",
    "pinterest",
    "reddit",
    "snapchat",
    "whatsapp",
    "wa.me",
    "messenger",
    "threads",
    "mastodon",
    "bsky",
    "tumblr",
    "quora",
    "discord",
    "telegram",
    "viadeo",
    "xing",
];
const VIDEO: &[&str] = &["youtube", "youtu.be", "vimeo", "dailymotion", "twitch", "wistia"];
const SHOPPING: &[&str] = &["amazon", "ebay", "etsy", "shopify", "shopping", "cdiscount", "rakuten"];

/// Does a source or host name a site in `list`? A host matches an entry when
/// one of its dot-separated labels equals it (`www.google.fr` ~ `google`) or,
/// for dotted entries, when it ends with it (`m.youtu.be` ~ `youtu.be`).
fn names(list: &[&str], s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    list.iter().any(|e| {
        if e.contains('.') {
            s == *e || s.ends_with(&format!(".{e}"))
        } else {
            s.split('.').any(|label| label == *e) || s == *e
        }
    })
}

/// GA4's paid-medium pattern `^(.*cp.*|ppc|retargeting|paid.*)$`, case-insensitive.
pub fn is_paid_medium(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("cp") || m == "ppc" || m == "retargeting" || m.starts_with("paid")
}

fn is_display_medium(m: &str) -> bool {
    ["display", "banner", "expandable", "interstitial", "cpm"].contains(&m)
}

/// Bought media of any kind (paid, display, affiliate): its campaign detail
/// needs marketing consent.
pub fn is_bought_medium(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    is_paid_medium(&m) || is_display_medium(&m) || m == "affiliate" || m == "affiliates"
}

/// Classifies one touch.
pub fn classify(input: &ChannelInput, rules: &ChannelRules) -> Channel {
    let lower = |o: &Option<String>| o.as_deref().map(str::to_ascii_lowercase).unwrap_or_default();
    let source = lower(&input.utm_source);
    let medium = lower(&input.utm_medium);
    let campaign = lower(&input.utm_campaign);
    let referrer_host = input.referrer.as_deref().and_then(crate::url::host_of);

    for o in &rules.overrides {
        let cond = |want: &Option<String>, have: &str| match want {
            None => true,
            Some(w) if w == "*" => !have.is_empty(),
            Some(w) => w.eq_ignore_ascii_case(have),
        };
        let host = referrer_host.as_deref().unwrap_or("");
        let campaign_ok = o.campaign_contains.as_ref().is_none_or(|c| campaign.contains(&c.to_ascii_lowercase()));
        let host_ok = o
            .referrer_host
            .as_ref()
            .is_none_or(|h| host == h.to_ascii_lowercase() || host.ends_with(&format!(".{}", h.to_ascii_lowercase())));
        if cond(&o.source, &source) && cond(&o.medium, &medium) && campaign_ok && host_ok {
            return o.channel.clone();
        }
    }
    if let Some(c) = &input.declared {
        return c.clone();
    }
    if !source.is_empty() || !medium.is_empty() || !campaign.is_empty() {
        return by_campaign(&source, &medium, &campaign, &input.click_ids);
    }
    if input.click_ids.iter().any(|c| c.is_search()) {
        return Channel::PaidSearch;
    }
    if input.click_ids.iter().any(|c| c.is_paid_social()) {
        return Channel::PaidSocial;
    }
    let Some(host) = referrer_host else {
        return Channel::Direct;
    };
    let own = input.page_url.as_deref().and_then(crate::url::host_of);
    let internal =
        own.as_deref() == Some(host.as_str()) || rules.internal_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
    if internal {
        Channel::Direct
    } else if names(SEARCH, &host) {
        Channel::OrganicSearch
    } else if names(SOCIAL, &host) {
        Channel::OrganicSocial
    } else if names(VIDEO, &host) {
        Channel::OrganicVideo
    } else if names(SHOPPING, &host) {
        Channel::OrganicShopping
    } else {
        Channel::Referral
    }
}

/// GA4's default channel group rules for a touch that has a campaign.
fn by_campaign(source: &str, medium: &str, campaign: &str, click_ids: &[ClickId]) -> Channel {
    let paid = is_paid_medium(medium);
    let any = |xs: &[&str], s: &str| xs.contains(&s);
    if (source == "(direct)" || source == "direct")
        && (medium.is_empty() || any(&["(none)", "(not set)", "none"], medium))
    {
        return Channel::Direct;
    }
    if campaign.contains("cross-network") {
        return Channel::CrossNetwork;
    }
    let shop_campaign = campaign.contains("shop");
    if (names(SHOPPING, source) || shop_campaign) && paid {
        return Channel::PaidShopping;
    }
    let search_click = click_ids.iter().any(|c| c.is_search());
    if (names(SEARCH, source) || search_click) && paid {
        return Channel::PaidSearch;
    }
    if names(SOCIAL, source) && paid {
        return Channel::PaidSocial;
    }
    if names(VIDEO, source) && paid {
        return Channel::PaidVideo;
    }
    if is_display_medium(medium) {
        return Channel::Display;
    }
    if paid {
        return Channel::PaidOther;
    }
    if names(SHOPPING, source) || shop_campaign {
        return Channel::OrganicShopping;
    }
    if names(SOCIAL, source)
        || any(&["social", "social-network", "social-media", "sm", "social network", "social media"], medium)
    {
        return Channel::OrganicSocial;
    }
    if names(VIDEO, source) || medium.contains("video") {
        return Channel::OrganicVideo;
    }
    if names(SEARCH, source) || medium == "organic" {
        return Channel::OrganicSearch;
    }
    if any(&["email", "e-mail", "e_mail", "e mail", "newsletter"], source)
        || any(&["email", "e-mail", "e_mail", "e mail", "newsletter"], medium)
    {
        return Channel::Email;
    }
    if medium == "affiliate" || medium == "affiliates" {
        return Channel::Affiliates;
    }
    if any(&["referral", "app", "link"], medium) {
        return Channel::Referral;
    }
    if medium == "audio" {
        return Channel::Audio;
    }
    if source == "sms" || medium == "sms" {
        return Channel::Sms;
    }
    if medium.ends_with("push") || medium.contains("mobile") || medium.contains("notification") || source == "firebase"
    {
        return Channel::MobilePush;
    }
    if medium == "offline"
        || any(&["qr", "qrcode", "print", "flyer", "event", "tradeshow", "trade-show", "phone", "call"], medium)
    {
        return Channel::Offline;
    }
    Channel::Unassigned
}
