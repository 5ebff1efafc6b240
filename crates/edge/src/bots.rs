//! The server-side bot filter: user agents of crawlers, monitors and HTTP
//! libraries. Their events are counted (`bots`) and never stored. Headless
//! browsers are not filtered here: they are also how sites test themselves.

const MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "crawl",
    "slurp",
    "mediapartners",
    "facebookexternalhit",
    "embedly",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpclient",
    "okhttp",
    "go-http-client",
    "java/",
    "libwww",
    "scrapy",
    "phantomjs",
    "axios/",
    "node-fetch",
];

pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    MARKERS.iter().any(|m| ua.contains(m))
}

#[cfg(test)]
mod tests {
    use super::is_bot;

    #[test]
    fn crawlers_are_bots_browsers_are_not() {
        assert!(is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"));
        assert!(is_bot("curl/8.5.0"));
        assert!(!is_bot(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
        ));
        assert!(!is_bot("node"));
        assert!(!is_bot(""));
    }
}
