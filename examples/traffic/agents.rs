//! Who the generator pretends to be: browsers (Chrome, Edge, Firefox, Safari; their user agents,
//! header sets and header order over HTTP/1.1, as each sends them for a navigation, a
//! stylesheet, a script, an image and a `fetch()`), a declared search crawler, and the HTTP
//! libraries harvesters are written with.

/// One browser build on one platform.
#[derive(Debug, Clone, Copy)]
pub struct Browser {
    pub family: Family,
    pub ua: &'static str,
    /// Chrome's `sec-ch-ua` brands (Chromium family only).
    pub brands: &'static str,
    /// Chrome's `sec-ch-ua-platform`.
    pub platform: &'static str,
    pub mobile: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Chromium,
    Firefox,
    Safari,
}

const CHROME: &str = "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Google Chrome\";v=\"120\"";
const EDGE: &str = "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Microsoft Edge\";v=\"120\"";

/// The browsers people use, roughly in the proportions of a general audience's site.
pub const BROWSERS: [Browser; 10] = [
    Browser {
        family: Family::Chromium,
        ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        brands: CHROME,
        platform: "\"Windows\"",
        mobile: false,
    },
    Browser {
        family: Family::Chromium,
        ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        brands: CHROME,
        platform: "\"Windows\"",
        mobile: false,
    },
    Browser {
        family: Family::Chromium,
        ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        brands: CHROME,
        platform: "\"macOS\"",
        mobile: false,
    },
    Browser {
        family: Family::Chromium,
        ua: "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        brands: CHROME,
        platform: "\"Android\"",
        mobile: true,
    },
    Browser {
        family: Family::Chromium,
        ua: "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        brands: CHROME,
        platform: "\"Android\"",
        mobile: true,
    },
    Browser {
        family: Family::Chromium,
        ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        brands: EDGE,
        platform: "\"Windows\"",
        mobile: false,
    },
    Browser {
        family: Family::Firefox,
        ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
        brands: "",
        platform: "",
        mobile: false,
    },
    Browser {
        family: Family::Firefox,
        ua: "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
        brands: "",
        platform: "",
        mobile: false,
    },
    Browser {
        family: Family::Safari,
        ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
        brands: "",
        platform: "",
        mobile: false,
    },
    Browser {
        family: Family::Safari,
        ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        brands: "",
        platform: "",
        mobile: true,
    },
];

/// Accept-Language as Chromium and Safari write it, and as Firefox writes the same choice.
pub const LANGUAGES: [(&str, &str); 8] = [
    ("en-US,en;q=0.9", "en-US,en;q=0.5"),
    (
        "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
        "fr,fr-FR;q=0.8,en-US;q=0.5,en;q=0.3",
    ),
    (
        "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
        "de,en-US;q=0.7,en;q=0.3",
    ),
    ("en-GB,en-US;q=0.9,en;q=0.8", "en-GB,en;q=0.5"),
    ("es-ES,es;q=0.9", "es-ES,es;q=0.8,en-US;q=0.5,en;q=0.3"),
    (
        "it-IT,it;q=0.9,en-US;q=0.8,en;q=0.7",
        "it-IT,it;q=0.8,en-US;q=0.5,en;q=0.3",
    ),
    (
        "nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7",
        "nl,en-US;q=0.7,en;q=0.3",
    ),
    (
        "pl-PL,pl;q=0.9,en-US;q=0.8,en;q=0.7",
        "pl,en-US;q=0.7,en;q=0.3",
    ),
];

/// What a request is for, as the browser's `Sec-Fetch-*` headers say it.
#[derive(Debug, Clone, Copy)]
pub enum Dest {
    /// A top-level navigation. `site`: `none` (typed, bookmark), `same-origin` (a click on the
    /// site) or `cross-site` (from a search engine); `user`: the navigation had a user gesture.
    Document {
        site: &'static str,
        user: bool,
    },
    Style,
    Script,
    Image,
    /// A `fetch()` from the page's own script (CORS mode, no destination).
    Fetch,
}

pub type Headers = Vec<(&'static str, String)>;

/// What one visitor's browser sends along with every request.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub referer: Option<&'a str>,
    /// Index into `LANGUAGES`.
    pub language: usize,
    pub cookie: Option<&'a str>,
}

impl Browser {
    /// The request headers after `Host`, in the order this browser sends them.
    pub fn headers(&self, dest: Dest, v: Visit) -> Headers {
        let (chromium_lang, firefox_lang) = LANGUAGES[v.language % LANGUAGES.len()];
        let lang = if self.family == Family::Firefox {
            firefox_lang
        } else {
            chromium_lang
        };
        let accept = self.accept(dest);
        let (site, mode, dest_name, user) = match dest {
            Dest::Document { site, user } => (site, "navigate", "document", user),
            Dest::Style => ("same-origin", "no-cors", "style", false),
            Dest::Script => ("same-origin", "no-cors", "script", false),
            Dest::Image => ("same-origin", "no-cors", "image", false),
            Dest::Fetch => ("same-origin", "cors", "empty", false),
        };
        let document = matches!(dest, Dest::Document { .. });
        let mut h: Headers = Vec::with_capacity(16);
        let mut add = |name: &'static str, value: &str| h.push((name, value.to_string()));
        match self.family {
            Family::Chromium => {
                add("connection", "keep-alive");
                if document {
                    add("sec-ch-ua", self.brands);
                    add("sec-ch-ua-mobile", if self.mobile { "?1" } else { "?0" });
                    add("sec-ch-ua-platform", self.platform);
                    add("upgrade-insecure-requests", "1");
                    add("user-agent", self.ua);
                } else {
                    add("sec-ch-ua", self.brands);
                    add("sec-ch-ua-mobile", if self.mobile { "?1" } else { "?0" });
                    add("user-agent", self.ua);
                    add("sec-ch-ua-platform", self.platform);
                }
                add("accept", accept);
                add("sec-fetch-site", site);
                add("sec-fetch-mode", mode);
                if user {
                    add("sec-fetch-user", "?1");
                }
                add("sec-fetch-dest", dest_name);
                if let Some(r) = v.referer {
                    add("referer", r);
                }
                add("accept-encoding", "gzip, deflate, br");
                add("accept-language", lang);
                if let Some(c) = v.cookie {
                    add("cookie", c);
                }
            }
            Family::Firefox => {
                add("user-agent", self.ua);
                add("accept", accept);
                add("accept-language", lang);
                add("accept-encoding", "gzip, deflate, br");
                if let Some(r) = v.referer {
                    add("referer", r);
                }
                add("connection", "keep-alive");
                if let Some(c) = v.cookie {
                    add("cookie", c);
                }
                if document {
                    add("upgrade-insecure-requests", "1");
                }
                add("sec-fetch-dest", dest_name);
                add("sec-fetch-mode", mode);
                add("sec-fetch-site", site);
                if user {
                    add("sec-fetch-user", "?1");
                }
            }
            Family::Safari => {
                add("accept", accept);
                add("sec-fetch-site", site);
                if let Some(c) = v.cookie {
                    add("cookie", c);
                }
                add("sec-fetch-dest", dest_name);
                add("accept-language", lang);
                add("sec-fetch-mode", mode);
                add("user-agent", self.ua);
                if let Some(r) = v.referer {
                    add("referer", r);
                }
                add("accept-encoding", "gzip, deflate, br");
                add("connection", "keep-alive");
            }
        }
        h
    }

    fn accept(&self, dest: Dest) -> &'static str {
        match (self.family, dest) {
            (Family::Chromium, Dest::Document { .. }) => "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
            (Family::Chromium, Dest::Image) => "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            (Family::Firefox, Dest::Document { .. }) => "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
            (Family::Firefox, Dest::Image) => "image/avif,image/webp,*/*",
            (Family::Safari, Dest::Document { .. }) => "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            (Family::Safari, Dest::Image) => "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
            (_, Dest::Style) => "text/css,*/*;q=0.1",
            (_, Dest::Script | Dest::Fetch) => "*/*",
        }
    }
}

/// The polite crawler's user agent, and its robots.txt token.
pub const POLITE_UA: &str = "ExampleSearchBot/1.2 (+https://example.org/bot)";
pub const POLITE_TOKEN: &str = "ExampleSearchBot";

/// A declared crawler's headers: no browser headers, a `From` address to complain to.
pub fn polite_headers(accept: &str) -> Headers {
    vec![
        ("user-agent", POLITE_UA.into()),
        ("accept", accept.into()),
        ("accept-encoding", "gzip, deflate, br".into()),
        ("from", "bot@example.org".into()),
        ("connection", "keep-alive".into()),
    ]
}

/// An HTTP library the bulk harvesters are written with, and its own user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// Python requests with BeautifulSoup: the plainest harvester.
    Requests,
    /// Scrapy with `ROBOTSTXT_OBEY` off after a first look: reads robots.txt, then ignores it.
    Scrapy,
    /// img2dataset's downloader (urllib): its own agent, a new connection per request.
    Img2dataset,
}

pub const LIBRARIES: [Library; 3] = [Library::Requests, Library::Scrapy, Library::Img2dataset];

impl Library {
    pub fn agent(self) -> &'static str {
        match self {
            Library::Requests => "python-requests/2.31.0",
            Library::Scrapy => "Scrapy/2.11.0 (+https://scrapy.org)",
            Library::Img2dataset => "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0 (compatible; img2downloader; +https://github.com/rom1504/img2dataset)",
        }
    }

    /// The headers after `Host` in this library's order, with `agent` as User-Agent.
    pub fn headers(self, agent: &str) -> Headers {
        let mut h: Headers = Vec::new();
        match self {
            Library::Requests => {
                h.push(("user-agent", agent.into()));
                h.push(("accept-encoding", "gzip, deflate".into()));
                h.push(("accept", "*/*".into()));
                h.push(("connection", "keep-alive".into()));
            }
            Library::Scrapy => {
                h.push((
                    "accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".into(),
                ));
                h.push(("accept-language", "en".into()));
                h.push(("user-agent", agent.into()));
                h.push(("accept-encoding", "gzip, deflate, br".into()));
            }
            Library::Img2dataset => {
                h.push(("accept-encoding", "identity".into()));
                h.push(("user-agent", agent.into()));
                h.push(("connection", "close".into()));
            }
        }
        h
    }
}

/// The disguised harvester's headers: python-requests with a browser's User-Agent, Accept and
/// Accept-Language copied in, in the library's order, and none of the `Sec-Fetch-*` headers
/// a browser adds by itself.
pub fn disguised_headers(agent: &str, page: bool) -> Headers {
    let accept = if page {
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    } else {
        "image/avif,image/webp,*/*"
    };
    vec![
        ("user-agent", agent.into()),
        ("accept-encoding", "gzip, deflate".into()),
        ("accept", accept.into()),
        ("connection", "keep-alive".into()),
        ("accept-language", "en-US,en;q=0.5".into()),
    ]
}

/// Browser agents the disguised harvester's pool gives its addresses (one per address).
pub const DISGUISED_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
];

/// The rendering harvester's browser: a real Chrome on Linux driven by a script (its agent
/// edited so that it does not say HeadlessChrome).
pub const RENDERING_BROWSER: Browser = Browser {
    family: Family::Chromium,
    ua: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    brands: CHROME,
    platform: "\"Linux\"",
    mobile: false,
};
