//! Torznab's pure half (`PROTOCOL.md` §4): a request's parameters read into
//! a [`Search`] (what every peer is asked, and the local `q`, `cat`,
//! `limit` and `offset`), which releases a page shows and in what order
//! ([`select`]), and the documents: capabilities ([`caps`]), the RSS feed
//! ([`feed`]) and Newznab-style errors ([`TorznabError::xml`]). The
//! download link is written ([`download_url`]) and read back
//! ([`parse_download_path`]) here, so the two cannot disagree.
//!
//! Pure: no I/O and no clock (the caller passes "now"). Every value put in
//! a document goes through `xml`'s escaping; nothing here writes markup by
//! hand.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::arr::xml::Writer;
use crate::clock::parse_rfc3339;
use crate::download::peer::{ListedRelease, percent_encode};
use crate::http::request::percent_decode;
use crate::lexical::decimal;
use crate::naming::{AirDate, air_date, imdb_number};

/// Items a page holds when `limit` is not given (or is 0).
pub const LIMIT_DEFAULT: usize = 100;
/// Most items a page holds, whatever `limit` asks.
pub const LIMIT_MAX: usize = 100;
/// Where stubs are handed out: `<prefix><percent-encoded peer:item>.torrent`.
pub const DOWNLOAD_PREFIX: &str = "/torznab/download/";
/// The `type` of every enclosure, and the stubs' `Content-Type`.
pub const TORRENT_TYPE: &str = "application/x-bittorrent";

const TORZNAB_NS: &str = "http://torznab.com/schemas/2015/feed";
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
/// Peer names are at most this long (`[[peers]] name`).
const MAX_PEER_NAME: usize = 64;
/// Item ids are at most this long (`PROTOCOL.md` §2.2).
const MAX_ITEM_ID: usize = 200;

/// A subcategory's id and name.
pub type Subcategory = (u32, &'static str);

/// The categories in the capabilities (`PROTOCOL.md` §4): Movies and TV
/// with Newznab's standard subcategories, as Radarr/Sonarr's defaults
/// (2000–2060, 5030/5040) and Prowlarr's list name them.
pub const CATEGORIES: &[(u32, &str, &[Subcategory])] = &[
    (
        2000,
        "Movies",
        &[
            (2010, "Foreign"),
            (2020, "Other"),
            (2030, "SD"),
            (2040, "HD"),
            (2045, "UHD"),
            (2050, "BluRay"),
            (2060, "3D"),
        ],
    ),
    (
        5000,
        "TV",
        &[
            (5010, "WEB-DL"),
            (5020, "Foreign"),
            (5030, "SD"),
            (5040, "HD"),
            (5045, "UHD"),
            (5050, "Other"),
            (5060, "Sport"),
            (5070, "Anime"),
            (5080, "Documentary"),
        ],
    ),
];

/// Whether a release of `category` answers a search for `asked`: the same
/// category, or one is the other's parent (a search for 2040 shows the
/// releases filed under 2000, whose subcategory nobody knows, and one for
/// 2000 shows those filed under 2045). Two subcategories of one parent are
/// different categories.
pub fn category_matches(asked: u32, category: u32) -> bool {
    let parent = |c: u32| c / 1000 * 1000;
    asked == category
        || (parent(asked) == parent(category)
            && (asked.is_multiple_of(1000) || category.is_multiple_of(1000)))
}

/// The `t` of a Torznab request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Caps,
    Search,
    Movie,
    TvSearch,
}

impl Function {
    /// The request's `t`: error 200 when it is missing, 202 when unknown.
    pub fn of(pairs: &[(String, String)]) -> Result<Function, TorznabError> {
        match param(pairs, "t") {
            None => Err(TorznabError::new(200, "Missing parameter (t)")),
            Some("caps") => Ok(Function::Caps),
            Some("search") => Ok(Function::Search),
            Some("movie") => Ok(Function::Movie),
            Some("tvsearch") => Ok(Function::TvSearch),
            Some(other) => Err(TorznabError::new(
                202,
                &format!("No such function ({other})"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Caps => "caps",
            Function::Search => "search",
            Function::Movie => "movie",
            Function::TvSearch => "tvsearch",
        }
    }
}

/// A Torznab error: Newznab's code and description, answered `200` with
/// `<error code=".." description=".."/>` as Radarr/Sonarr expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorznabError {
    pub code: u16,
    pub description: String,
}

impl TorznabError {
    pub fn new(code: u16, description: &str) -> TorznabError {
        TorznabError {
            code,
            description: description.to_string(),
        }
    }

    /// Code 100: a missing or wrong `apikey` (`PROTOCOL.md` §4).
    pub fn invalid_key() -> TorznabError {
        TorznabError::new(100, "Invalid API Key")
    }

    fn incorrect(param: &str) -> TorznabError {
        TorznabError::new(201, &format!("Incorrect parameter ({param})"))
    }

    pub fn xml(&self) -> String {
        let mut w = Writer::new();
        w.empty(
            "error",
            &[
                ("code", &self.code.to_string()),
                ("description", &self.description),
            ],
        );
        w.finish()
    }
}

/// A search request, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub function: Function,
    /// Lowercase words of `q`; a shown title has every one of them.
    pub words: Vec<String>,
    /// `cat`: the categories asked for (empty: all).
    pub categories: Vec<u32>,
    pub limit: usize,
    pub offset: usize,
    /// What every peer's `/peer/search` is asked, in §2.1's names.
    pub peer_query: Vec<(&'static str, String)>,
    /// A daily show's day (`season=<yyyy>&ep=<MM>/<dd>`, as Sonarr asks
    /// for one): only releases of that day show, by their `airDate` or a
    /// date in their title. Peers are asked without `season` and
    /// `episode` (§2.1 takes numbers there; a daily file has neither, or
    /// its year as the season) and the day is picked here.
    pub air_date: Option<AirDate>,
    /// A daily show's year (`season=<yyyy>` alone, Sonarr's daily season
    /// search): releases that aired that year (by `airDate` or a date in
    /// the title), or filed under that season; peers are asked without it.
    pub air_year: Option<u32>,
    /// A `season` or `ep` that is not a number nor a daily show's day
    /// (`ep=S01`, `ep=02/30`): no release can match, so no peer is asked
    /// and the feed is empty (an error would make Sonarr set the indexer
    /// aside).
    pub matches_nothing: bool,
}

impl Search {
    /// The parameters of a `search`, `movie` or `tvsearch` request. Empty
    /// values count as absent; a malformed `cat`, `limit`, `offset`,
    /// `tmdbid`, `imdbid` or `tvdbid` is error 201.
    pub fn parse(function: Function, pairs: &[(String, String)]) -> Result<Search, TorznabError> {
        fn number<T: std::str::FromStr>(
            pairs: &[(String, String)],
            key: &str,
        ) -> Result<Option<T>, TorznabError> {
            param(pairs, key)
                .map(|v| decimal(v).ok_or_else(|| TorznabError::incorrect(key)))
                .transpose()
        }
        let categories = match param(pairs, "cat") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| decimal(c).ok_or_else(|| TorznabError::incorrect("cat")))
                .collect::<Result<_, _>>()?,
        };
        let limit = match number::<usize>(pairs, "limit")? {
            None | Some(0) => LIMIT_DEFAULT,
            Some(n) => n.min(LIMIT_MAX),
        };
        let offset = number::<usize>(pairs, "offset")?.unwrap_or(0);

        let mut peer_query = Vec::new();
        if let Some(id) = number::<u64>(pairs, "tmdbid")? {
            peer_query.push(("tmdbId", id.to_string()));
        }
        if let Some(v) = param(pairs, "imdbid") {
            let n = imdb_number(v).ok_or_else(|| TorznabError::incorrect("imdbid"))?;
            peer_query.push(("imdbId", format!("tt{n:07}")));
        }
        if let Some(id) = number::<u64>(pairs, "tvdbid")? {
            peer_query.push(("tvdbId", id.to_string()));
        }
        let (mut matches_nothing, mut air_date, mut air_year) = (false, None, None);
        let year = param(pairs, "season")
            .and_then(decimal::<u32>)
            .filter(|y| DAILY_YEARS.contains(y));
        if let Some((year, month, day)) = daily(pairs) {
            air_date = decimal::<u32>(year).and_then(|y| AirDate::new(y, month, day));
            matches_nothing = air_date.is_none();
        } else if let (Some(year), None) = (year, param(pairs, "ep")) {
            air_year = Some(year);
        } else {
            for (ours, theirs) in [("season", "season"), ("ep", "episode")] {
                if let Some(v) = param(pairs, ours) {
                    match decimal::<u32>(v) {
                        Some(n) => peer_query.push((theirs, n.to_string())),
                        None => matches_nothing = true,
                    }
                }
            }
        }
        Ok(Search {
            function,
            words: param(pairs, "q").map(words).unwrap_or_default(),
            categories,
            limit,
            offset,
            peer_query,
            air_date,
            air_year,
            matches_nothing,
        })
    }

    /// Whether a release belongs in the answer (before paging).
    fn shows(&self, r: &ListedRelease) -> bool {
        let (title, category) = (r.title.as_str(), r.category);
        if let Some(day) = self.air_date
            && r.air_date != Some(day)
            && air_date(title) != Some(day)
        {
            return false;
        }
        if let Some(year) = self.air_year {
            let aired = |d: Option<AirDate>| d.is_some_and(|d| u32::from(d.year) == year);
            if !aired(r.air_date) && !aired(air_date(title)) && r.season != Some(year) {
                return false;
            }
        }
        let in_category = self.categories.is_empty()
            || self
                .categories
                .iter()
                .any(|&c| category_matches(c, category));
        if !in_category {
            return false;
        }
        let title_words = if self.words.is_empty() {
            Vec::new()
        } else {
            words(title)
        };
        self.words.iter().all(|w| title_words.contains(w))
    }
}

/// The years a `season` alone names a daily show's year, not a season.
const DAILY_YEARS: std::ops::RangeInclusive<u32> = 1900..=2099;

/// (year, month, day) of a daily show's `season=<yyyy>&ep=<MM>/<dd>`
/// (1 or 2 digits each side of the `/`), the year unchecked.
fn daily(pairs: &[(String, String)]) -> Option<(&str, u32, u32)> {
    let (month, day) = param(pairs, "ep")?.split_once('/')?;
    let part = |p: &str| {
        (1..=2)
            .contains(&p.len())
            .then(|| decimal::<u32>(p))
            .flatten()
    };
    Some((param(pairs, "season")?, part(month)?, part(day)?))
}

/// The first non-empty value of `key`.
fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// Lowercase words: runs of letters and digits, apostrophes dropped first
/// (`Ocean's` is `oceans`, as Radarr writes it in `q`).
fn words(text: &str) -> Vec<String> {
    text.replace(['\'', '\u{2019}'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A release some peer listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Our name for the peer (its `[[peers]] name`).
    pub peer: String,
    pub release: ListedRelease,
    /// `publishDate`, when the peer sent a valid one.
    pub published: Option<SystemTime>,
}

impl Found {
    pub fn new(peer: &str, release: ListedRelease) -> Found {
        let published = release.publish_date.as_deref().and_then(parse_rfc3339);
        Found {
            peer: peer.to_string(),
            release,
            published,
        }
    }

    /// The Torznab `guid`: `<peerId>:<itemId>`.
    pub fn guid(&self) -> String {
        format!("{}:{}", self.peer, self.release.id)
    }
}

/// What a page shows: of `found`, the releases that can be grabbed (size
/// 1..=`max_size`, as a stub needs), in the asked categories, with every
/// word of `q` in the title; newest first (no date: `now`), then by peer
/// and id, each `peer:id` once; `offset` skipped, `limit` kept. Returns the
/// count before paging, and the page.
pub fn select(
    search: &Search,
    found: Vec<Found>,
    max_size: u64,
    now: SystemTime,
) -> (usize, Vec<Found>) {
    let mut seen = HashSet::new();
    let mut shown: Vec<Found> = found
        .into_iter()
        .filter(|f| (1..=max_size).contains(&f.release.size))
        .filter(|f| search.shows(&f.release))
        .filter(|f| seen.insert((f.peer.clone(), f.release.id.clone())))
        .collect();
    shown.sort_by(|a, b| {
        let (ta, tb) = (a.published.unwrap_or(now), b.published.unwrap_or(now));
        tb.cmp(&ta)
            .then_with(|| a.peer.cmp(&b.peer))
            .then_with(|| a.release.id.cmp(&b.release.id))
    });
    let total = shown.len();
    let page = shown
        .into_iter()
        .skip(search.offset)
        .take(search.limit)
        .collect();
    (total, page)
}

/// The capabilities document (`t=caps`).
pub fn caps() -> String {
    let limit_max = LIMIT_MAX.to_string();
    let limit_default = LIMIT_DEFAULT.to_string();
    let mut w = Writer::new();
    w.open("caps", &[])
        .empty(
            "server",
            &[("title", "jack"), ("version", env!("CARGO_PKG_VERSION"))],
        )
        .empty(
            "limits",
            &[("max", &limit_max), ("default", &limit_default)],
        )
        .open("searching", &[])
        .empty("search", &[("available", "yes"), ("supportedParams", "q")])
        .empty(
            "tv-search",
            &[
                ("available", "yes"),
                ("supportedParams", "q,tvdbid,season,ep"),
            ],
        )
        .empty(
            "movie-search",
            &[("available", "yes"), ("supportedParams", "q,imdbid,tmdbid")],
        )
        .close()
        .open("categories", &[]);
    for (parent, name, subcats) in CATEGORIES {
        w.open("category", &[("id", &parent.to_string()), ("name", name)]);
        for (id, name) in *subcats {
            w.empty("subcat", &[("id", &id.to_string()), ("name", name)]);
        }
        w.close();
    }
    w.finish()
}

/// Where the feed's links point: this node as Radarr/Sonarr reach it, and
/// the key they present.
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    /// `server.public_url`, without a trailing `/`.
    pub public_url: &'a str,
    pub api_key: &'a str,
}

/// `<public_url>/torznab/download/<percent-encoded peer:item>.torrent?apikey=<key>`.
pub fn download_url(links: Links<'_>, peer: &str, item_id: &str) -> String {
    format!(
        "{}{DOWNLOAD_PREFIX}{}.torrent?apikey={}",
        links.public_url,
        percent_encode(&format!("{peer}:{item_id}")),
        percent_encode(links.api_key)
    )
}

/// (peer, item id) of a download path (without its query), as
/// [`download_url`] writes it; `None` for anything else. The item id is
/// everything after the first `:` and may hold more.
pub fn parse_download_path(path: &str) -> Option<(String, String)> {
    let encoded = path
        .strip_prefix(DOWNLOAD_PREFIX)?
        .strip_suffix(".torrent")?;
    if encoded.len() > 3 * (MAX_PEER_NAME + 1 + MAX_ITEM_ID) {
        return None;
    }
    let decoded = percent_decode(encoded, false)?;
    let (peer, item) = decoded.split_once(':')?;
    let fits = |s: &str, max: usize| (1..=max).contains(&s.len()) && !s.contains('\0');
    (fits(peer, MAX_PEER_NAME) && fits(item, MAX_ITEM_ID))
        .then(|| (peer.to_string(), item.to_string()))
}

/// The RSS 2.0 feed of one page, with Torznab's attributes.
pub fn feed(links: Links<'_>, page: &[Found], now: SystemTime) -> String {
    let mut w = Writer::new();
    w.open(
        "rss",
        &[
            ("version", "2.0"),
            ("xmlns:atom", ATOM_NS),
            ("xmlns:torznab", TORZNAB_NS),
        ],
    )
    .open("channel", &[])
    .text("title", &[], "jack")
    .text(
        "description",
        &[],
        "Releases on the peers of this jack node",
    )
    .text("link", &[], links.public_url);
    for found in page {
        item(&mut w, links, found, now);
    }
    w.finish()
}

fn item(w: &mut Writer, links: Links<'_>, found: &Found, now: SystemTime) {
    let r = &found.release;
    let url = download_url(links, &found.peer, &r.id);
    let size = r.size.to_string();
    let category = r.category.to_string();
    let published = httpdate::fmt_http_date(found.published.unwrap_or(now));
    w.open("item", &[])
        .text("title", &[], &r.title)
        .text("guid", &[("isPermaLink", "false")], &found.guid())
        .text("link", &[], &url)
        .text("pubDate", &[], &published)
        .text("size", &[], &size)
        .empty(
            "enclosure",
            &[("url", &url), ("length", &size), ("type", TORRENT_TYPE)],
        );
    let mut attrs: Vec<(&str, String)> = vec![
        ("category", category),
        ("size", size),
        ("seeders", "1".into()),
        ("peers", "1".into()),
        ("downloadvolumefactor", "0".into()),
        ("uploadvolumefactor", "1".into()),
    ];
    // Radarr and Sonarr read `imdb` (digits); Jackett and Prowlarr write
    // and read `imdbid` with its `tt`. Both, seven digits at least.
    if let Some(n) = r.imdb_id.as_deref().and_then(imdb_number) {
        attrs.push(("imdb", format!("{n:07}")));
        attrs.push(("imdbid", format!("tt{n:07}")));
    }
    let known = [
        ("tmdbid", r.tmdb_id),
        ("tvdbid", r.tvdb_id),
        ("season", r.season.map(u64::from)),
        ("episode", r.episode.map(u64::from)),
    ];
    for (name, value) in known {
        if let Some(v) = value {
            attrs.push((name, v.to_string()));
        }
    }
    for (name, value) in &attrs {
        w.empty("torznab:attr", &[("name", name), ("value", value)]);
    }
    w.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn pairs(query: &str) -> Vec<(String, String)> {
        crate::http::request::query_pairs(query)
    }

    fn search(query: &str) -> Result<Search, TorznabError> {
        let p = pairs(query);
        Search::parse(Function::of(&p)?, &p)
    }

    fn release(
        id: &str,
        title: &str,
        category: u32,
        size: u64,
        date: Option<&str>,
    ) -> ListedRelease {
        ListedRelease {
            id: id.into(),
            title: title.into(),
            category,
            size,
            tmdb_id: None,
            imdb_id: None,
            tvdb_id: None,
            season: None,
            episode: None,
            publish_date: date.map(str::to_string),
            air_date: None,
            sha256: None,
        }
    }

    #[test]
    fn functions() {
        let cases: &[(&str, Result<Function, u16>)] = &[
            ("t=caps", Ok(Function::Caps)),
            ("t=search", Ok(Function::Search)),
            ("t=movie&apikey=k", Ok(Function::Movie)),
            ("t=tvsearch", Ok(Function::TvSearch)),
            ("", Err(200)),
            ("t=", Err(200)),
            ("T=caps", Err(200)),
            ("t=music", Err(202)),
            ("t=details", Err(202)),
            ("t=CAPS", Err(202)),
        ];
        for (query, want) in cases {
            let got = Function::of(&pairs(query)).map_err(|e| e.code);
            assert_eq!(got, *want, "{query}");
        }
    }

    #[test]
    fn ids_map_to_peer_parameters() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("t=movie&tmdbid=603", &[("tmdbId", "603")]),
            ("t=movie&imdbid=tt0133093", &[("imdbId", "tt0133093")]),
            ("t=movie&imdbid=133093", &[("imdbId", "tt0133093")]),
            ("t=movie&imdbid=tt12345678", &[("imdbId", "tt12345678")]),
            (
                "t=movie&tmdbid=603&imdbid=tt0133093",
                &[("tmdbId", "603"), ("imdbId", "tt0133093")],
            ),
            (
                "t=tvsearch&tvdbid=81189&season=2&ep=3",
                &[("tvdbId", "81189"), ("season", "2"), ("episode", "3")],
            ),
            (
                "t=tvsearch&tvdbid=81189&season=2",
                &[("tvdbId", "81189"), ("season", "2")],
            ),
            ("t=tvsearch&tvdbid=&season=&ep=", &[]),
            ("t=search&q=matrix&rid=5&extended=1", &[]),
        ];
        for (query, want) in cases {
            let s = search(query).unwrap();
            let got: Vec<(&str, &str)> =
                s.peer_query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(got, *want, "{query}");
            assert!(!s.matches_nothing, "{query}");
        }
    }

    #[test]
    fn malformed_parameters() {
        let incorrect = [
            "t=movie&tmdbid=abc",
            "t=movie&tmdbid=-1",
            "t=movie&imdbid=nm0000206",
            "t=tvsearch&tvdbid=1.5",
            "t=search&cat=2000,movies",
            "t=search&limit=ten",
            "t=search&offset=-3",
            // Rust's parsers take a leading `+`; a number here does not.
            "t=movie&tmdbid=%2B949",
            "t=tvsearch&tvdbid=%2B1",
            "t=search&cat=%2B2000",
            "t=search&limit=%2B5",
        ];
        for query in incorrect {
            assert_eq!(search(query).unwrap_err().code, 201, "{query}");
        }
        for query in [
            "t=tvsearch&season=S01",
            "t=tvsearch&season=1&ep=E02",
            "t=tvsearch&tvdbid=1&season=2023&ep=02/30",
            "t=tvsearch&tvdbid=1&season=2023&ep=13/01",
            "t=tvsearch&tvdbid=1&season=1800&ep=01/01",
            "t=tvsearch&tvdbid=1&season=year&ep=01/01",
            "t=tvsearch&tvdbid=1&season=2023&ep=012/01",
            "t=tvsearch&tvdbid=1&season=2023&ep=12/",
            "t=tvsearch&tvdbid=1&ep=12/25",
        ] {
            let s = search(query).unwrap();
            assert!(s.matches_nothing, "{query}");
            assert_eq!(s.air_date, None, "{query}");
        }
    }

    /// Sonarr's daily episode search, in both tiers, `ep` as it writes it
    /// and percent-encoded: peers are asked without season and episode.
    #[test]
    fn daily_episode_searches() {
        let day = AirDate::new(2011, 3, 15);
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "t=tvsearch&cat=5000&extended=1&offset=0&limit=100&tvdbid=71256&season=2011&ep=03/15",
                &[("tvdbId", "71256")],
            ),
            (
                "t=tvsearch&cat=5000&extended=1&offset=0&limit=100&tvdbid=71256&season=2011&ep=03%2F15",
                &[("tvdbId", "71256")],
            ),
            (
                "t=tvsearch&cat=5000&extended=1&offset=0&limit=100&q=The%20Daily%20Show&season=2011&ep=03/15",
                &[],
            ),
            ("t=tvsearch&season=2011&ep=3/15", &[]),
        ];
        for (query, want) in cases {
            let s = search(query).unwrap();
            let got: Vec<(&str, &str)> =
                s.peer_query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!((got.as_slice(), s.air_date), (*want, day), "{query}");
            assert!(!s.matches_nothing, "{query}");
        }
        let daily = search("t=tvsearch&q=the+daily+show&season=2011&ep=03/15").unwrap();
        let mut dated = release("d", "The.Daily.Show.S2011E45.720p", 5000, 1, None);
        dated.air_date = day;
        let shows = |r: ListedRelease| daily.shows(&r);
        assert!(shows(dated.clone()), "by airDate");
        dated.air_date = AirDate::new(2011, 3, 16);
        assert!(!shows(dated), "another day's airDate");
        for (title, want) in [
            ("The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP", true),
            ("The Daily Show - 2011-03-15 - Guest HDTV-720p", true),
            ("The.Daily.Show.2011.03.16.720p.HDTV.x264-GRP", false),
            ("The.Daily.Show.S01E03.720p.HDTV", false),
            ("Other.Show.2011.03.15.720p.HDTV", false),
        ] {
            assert_eq!(shows(release("d", title, 5000, 1, None)), want, "{title}");
        }
    }
    /// Sonarr's daily season search (`season=<yyyy>` alone): peers are
    /// asked without the season, and what aired that year shows (or what
    /// is filed under that season); a small `season` is a season.
    #[test]
    fn daily_season_searches() {
        let s = search("t=tvsearch&cat=5000&extended=1&tvdbid=71256&season=2011").unwrap();
        let got: Vec<(&str, &str)> = s.peer_query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            (got.as_slice(), s.air_year),
            (&[("tvdbId", "71256")][..], Some(2011))
        );
        for (title, air, season, want) in [
            ("The.Daily.Show.2011.03.15.720p.HDTV", None, None, true),
            ("The Daily Show - 2011-12-31 - Guest", None, None, true),
            ("The.Daily.Show.2012.01.01.720p.HDTV", None, None, false),
            (
                "The.Daily.Show.E45.720p",
                AirDate::new(2011, 5, 2),
                None,
                true,
            ),
            (
                "The.Daily.Show.E45.720p",
                AirDate::new(2010, 5, 2),
                None,
                false,
            ),
            ("The.Daily.Show.S2011E45.720p", None, Some(2011), true),
            ("The.Daily.Show.S01E03.720p.HDTV", None, Some(1), false),
        ] {
            let mut r = release("d", title, 5000, 1, None);
            (r.air_date, r.season) = (air, season);
            assert_eq!(s.shows(&r), want, "{title}");
        }
        let regular = search("t=tvsearch&tvdbid=1&season=3").unwrap();
        assert_eq!(regular.air_year, None);
        assert!(regular.peer_query.contains(&("season", "3".into())));
    }

    #[test]
    fn paging_and_categories_are_read() {
        let cases: &[(&str, usize, usize, &[u32])] = &[
            ("t=search", LIMIT_DEFAULT, 0, &[]),
            ("t=search&limit=0", LIMIT_DEFAULT, 0, &[]),
            ("t=search&limit=10&offset=20", 10, 20, &[]),
            ("t=search&limit=100000", LIMIT_MAX, 0, &[]),
            (
                "t=search&cat=2000,2040,,5000",
                LIMIT_DEFAULT,
                0,
                &[2000, 2040, 5000],
            ),
            ("t=search&cat=", LIMIT_DEFAULT, 0, &[]),
        ];
        for (query, limit, offset, cats) in cases {
            let s = search(query).unwrap();
            assert_eq!(
                (s.limit, s.offset, s.categories.as_slice()),
                (*limit, *offset, *cats),
                "{query}"
            );
        }
    }

    #[test]
    fn which_releases_show() {
        let cases: &[(&str, &str, u32, bool)] = &[
            ("t=search", "Anything", 2000, true),
            ("t=search&q=the+matrix", "The.Matrix.1999.1080p", 2000, true),
            ("t=search&q=THE%20MATRIX", "the matrix (1999)", 2000, true),
            ("t=search&q=matrix+reloaded", "The.Matrix.1999", 2000, false),
            ("t=search&q=matri", "The.Matrix.1999", 2000, false),
            (
                "t=search&q=Ocean%27s+Eleven",
                "Oceans.Eleven.2001",
                2000,
                true,
            ),
            ("t=search&q=oceans", "Ocean's Eleven", 2000, true),
            ("t=search&q=spider-man", "Spider.Man.2002", 2000, true),
            ("t=search&q=am%C3%A9lie", "AMÉLIE.2001", 2000, true),
            ("t=search&cat=2000", "M", 2000, true),
            ("t=search&cat=2040", "M", 2000, true),
            ("t=search&cat=2000", "M", 2045, true),
            ("t=search&cat=5000", "M", 2000, false),
            ("t=search&cat=5030,2010", "M", 2000, true),
            ("t=search&cat=5040", "T", 5000, true),
            ("t=search&cat=2040", "M", 2040, true),
            ("t=search&cat=2040", "M", 2030, false),
            (
                "t=search&cat=2000,2010,2020,2030,2040,2045,2050,2060",
                "M",
                2045,
                true,
            ),
            ("t=search&cat=5030,5040", "T", 5070, false),
            ("t=search&cat=5000", "T", 5070, true),
            ("t=search&cat=2040", "T", 5040, false),
            ("t=search&cat=8000", "M", 2000, false),
            ("t=search&cat=2000&q=x", "M", 2000, false),
        ];
        for (query, title, category, want) in cases {
            assert_eq!(
                search(query)
                    .unwrap()
                    .shows(&release("r", title, *category, 1, None)),
                *want,
                "{query} {title}"
            );
        }
    }

    #[test]
    fn select_filters_sorts_and_pages() {
        let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let found = vec![
            Found::new(
                "bob",
                release("b1", "Old", 2000, 10, Some("2001-01-01T00:00:00Z")),
            ),
            Found::new(
                "alice",
                release("a1", "New", 2000, 10, Some("2026-01-02T03:04:05Z")),
            ),
            Found::new("alice", release("a2", "Undated", 5000, 10, None)),
            Found::new(
                "alice",
                release("a3", "Bad date", 5000, 10, Some("yesterday")),
            ),
            Found::new("bob", release("b2", "Empty", 2000, 0, None)),
            Found::new("bob", release("b3", "Too big", 2000, 101, None)),
            Found::new(
                "bob",
                release("b1", "Old again", 2000, 10, Some("2001-01-01T00:00:00Z")),
            ),
            Found::new(
                "carol",
                release(
                    "b1",
                    "Same id, other peer",
                    2000,
                    100,
                    Some("2001-01-01T00:00:00Z"),
                ),
            ),
        ];
        let guids = |page: &[Found]| page.iter().map(Found::guid).collect::<Vec<_>>();
        let all = search("t=search").unwrap();
        let (total, page) = select(&all, found.clone(), 100, now);
        assert_eq!(total, 5);
        assert_eq!(
            guids(&page),
            ["alice:a2", "alice:a3", "alice:a1", "bob:b1", "carol:b1"]
        );
        assert_eq!(
            page[3].release.title, "Old",
            "the first listing of an id is kept"
        );

        let paged = search("t=search&limit=2&offset=1").unwrap();
        let (total, page) = select(&paged, found.clone(), 100, now);
        assert_eq!(
            (total, guids(&page)),
            (5, vec!["alice:a3".into(), "alice:a1".into()])
        );
        let beyond = search("t=search&offset=50").unwrap();
        assert_eq!(select(&beyond, found.clone(), 100, now), (5, vec![]));
        let movies = search("t=movie&cat=2000").unwrap();
        let (total, page) = select(&movies, found, 100, now);
        assert_eq!(
            (total, guids(&page)),
            (
                3,
                vec!["alice:a1".into(), "bob:b1".into(), "carol:b1".into()]
            )
        );
    }

    #[test]
    fn download_paths_round_trip() {
        let links = Links {
            public_url: "http://jack.lan:5225",
            api_key: "k&y=1",
        };
        let cases = [
            ("alice", "lib1:movie:4f2a"),
            ("bob_2", "a/b c?d#e%f"),
            ("c-3", "日本:語"),
            ("D", "x"),
        ];
        for (peer, item) in cases {
            let url = download_url(links, peer, item);
            let rest = url.strip_prefix("http://jack.lan:5225").unwrap();
            let (path, query) = rest.split_once('?').unwrap();
            assert_eq!(query, "apikey=k%26y%3D1");
            assert!(
                !path[DOWNLOAD_PREFIX.len()..].contains([':', '/', ' ', '#']),
                "{path}"
            );
            assert_eq!(
                parse_download_path(path),
                Some((peer.to_string(), item.to_string()))
            );
        }
        assert_eq!(
            download_url(links, "alice", "lib1:movie:4f2a"),
            "http://jack.lan:5225/torznab/download/alice%3Alib1%3Amovie%3A4f2a.torrent?apikey=k%26y%3D1"
        );
        let refused = [
            "/torznab/download/alice.torrent",
            "/torznab/download/alice%3A.torrent",
            "/torznab/download/%3Aitem.torrent",
            "/torznab/download/alice%3Aitem",
            "/torznab/download/alice%3Aitem.torrent.part",
            "/torznab/download/alice%3Ait%00em.torrent",
            "/torznab/download/alice%3Ait%zzem.torrent",
            "/torznab/download/alice%3Ait%FFem.torrent",
            "/torznab/dl/alice%3Aitem.torrent",
        ];
        for path in refused {
            assert_eq!(parse_download_path(path), None, "{path}");
        }
        let long_item = format!("/torznab/download/a%3A{}.torrent", "x".repeat(201));
        assert_eq!(parse_download_path(&long_item), None);
        let long_peer = format!("/torznab/download/{}%3Ax.torrent", "p".repeat(65));
        assert_eq!(parse_download_path(&long_peer), None);
        assert!(parse_download_path("/torznab/download/alice:raw:colons.torrent").is_some());
    }

    fn child<'a, 'i>(item: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        item.children().find(|n| n.has_tag_name(name)).unwrap()
    }

    /// The `value` of each `torznab:attr` of an item, by name.
    fn attrs(item: roxmltree::Node<'_, '_>) -> Vec<(String, String)> {
        item.children()
            .filter(|n| n.has_tag_name((TORZNAB_NS, "attr")))
            .map(|n| {
                (
                    n.attribute("name").unwrap().into(),
                    n.attribute("value").unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn feeds_parse_and_carry_every_field() {
        let links = Links {
            public_url: "http://jack.lan:5225",
            api_key: "key",
        };
        let hostile = "A & B <c> \"d\" 'e' \u{1}f\u{1b}\u{7f}\u{fffe}g\tü]]>";
        let mut full = release(
            "lib:<&>\"'\u{2}:1",
            hostile,
            2000,
            8_547_483_648,
            Some("2026-01-02T03:04:05Z"),
        );
        full.tmdb_id = Some(603);
        full.imdb_id = Some("tt0133093".into());
        let mut episode = release("tv:1", "Show.S01E02", 5000, 7, None);
        episode.tvdb_id = Some(81189);
        episode.season = Some(1);
        episode.episode = Some(2);
        episode.imdb_id = Some("12".into());
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let page = [Found::new("alice", full), Found::new("bob", episode)];
        let text = feed(links, &page, now);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let rss = doc.root_element();
        assert_eq!(
            (rss.tag_name().name(), rss.attribute("version")),
            ("rss", Some("2.0"))
        );
        assert_eq!(rss.lookup_namespace_uri(Some("torznab")), Some(TORZNAB_NS));
        let items: Vec<_> = rss
            .descendants()
            .filter(|n| n.has_tag_name("item"))
            .collect();
        assert_eq!(items.len(), 2);
        let first = items[0];
        assert_eq!(
            child(first, "title").text(),
            Some("A & B <c> \"d\" 'e' fg\tü]]>")
        );
        assert_eq!(child(first, "guid").text(), Some("alice:lib:<&>\"':1"));
        assert_eq!(
            child(first, "pubDate").text(),
            Some("Fri, 02 Jan 2026 03:04:05 GMT")
        );
        assert_eq!(child(first, "size").text(), Some("8547483648"));
        let url = download_url(links, "alice", "lib:<&>\"'\u{2}:1");
        assert_eq!(child(first, "link").text(), Some(url.as_str()));
        let enclosure = child(first, "enclosure");
        assert_eq!(enclosure.attribute("url"), Some(url.as_str()));
        assert_eq!(enclosure.attribute("length"), Some("8547483648"));
        assert_eq!(enclosure.attribute("type"), Some(TORRENT_TYPE));
        let want = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            attrs(first),
            want(&[
                ("category", "2000"),
                ("size", "8547483648"),
                ("seeders", "1"),
                ("peers", "1"),
                ("downloadvolumefactor", "0"),
                ("uploadvolumefactor", "1"),
                ("imdb", "0133093"),
                ("imdbid", "tt0133093"),
                ("tmdbid", "603"),
            ])
        );
        let second = items[1];
        assert_eq!(
            child(second, "pubDate").text(),
            Some(httpdate::fmt_http_date(now).as_str()),
            "no publishDate: now"
        );
        assert_eq!(
            attrs(second)[6..],
            want(&[
                ("imdb", "0000012"),
                ("imdbid", "tt0000012"),
                ("tvdbid", "81189"),
                ("season", "1"),
                ("episode", "2"),
            ])
        );
    }

    #[test]
    fn caps_parse() {
        let text = caps();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let find = |name: &str| doc.descendants().find(|n| n.has_tag_name(name)).unwrap();
        assert_eq!(find("limits").attribute("max"), Some("100"));
        assert_eq!(
            find("movie-search").attribute("supportedParams"),
            Some("q,imdbid,tmdbid")
        );
        let cats: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("category"))
            .map(|n| (n.attribute("id").unwrap(), n.attribute("name").unwrap()))
            .collect();
        assert_eq!(cats, [("2000", "Movies"), ("5000", "TV")]);
        let subcats = |parent: &str| -> Vec<String> {
            doc.descendants()
                .find(|n| n.has_tag_name("category") && n.attribute("id") == Some(parent))
                .unwrap()
                .children()
                .filter(|n| n.has_tag_name("subcat"))
                .map(|n| {
                    format!(
                        "{} {}",
                        n.attribute("id").unwrap(),
                        n.attribute("name").unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(
            subcats("2000"),
            [
                "2010 Foreign",
                "2020 Other",
                "2030 SD",
                "2040 HD",
                "2045 UHD",
                "2050 BluRay",
                "2060 3D"
            ]
        );
        assert_eq!(
            subcats("5000"),
            [
                "5010 WEB-DL",
                "5020 Foreign",
                "5030 SD",
                "5040 HD",
                "5045 UHD",
                "5050 Other",
                "5060 Sport",
                "5070 Anime",
                "5080 Documentary"
            ]
        );
    }

    #[test]
    fn error_documents() {
        assert_eq!(
            TorznabError::invalid_key().xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error code=\"100\" description=\"Invalid API Key\"/>\n"
        );
        assert!(
            TorznabError::new(202, "No such function (<x>)")
                .xml()
                .contains("description=\"No such function (&lt;x&gt;)\"")
        );
    }
}
