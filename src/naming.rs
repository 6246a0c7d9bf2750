//! Release facts derived from a video file's name and its parent folders.
//!
//! Owns the reading of Radarr/Sonarr naming conventions: id tags
//! (`{tmdb-603}`, `[imdbid-tt0133093]`, `{tvdb-81189}`), the year, `S01E02`,
//! resolution, source, the quality name and the release group. It is pure:
//! it must not touch the file system, must not depend on a regex crate, and
//! must never panic, whatever bytes a file name holds. Text is only sliced at
//! the positions of ASCII bytes (or of `char_indices`), so multibyte names
//! are safe.

use std::ops::Range;

/// What a file name and its folders say about a release. Every field is
/// `None` when the names do not say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFacts {
    pub tmdb_id: Option<u64>,
    /// Always `tt` followed by 1 to 10 digits, e.g. `tt0133093`.
    pub imdb_id: Option<String>,
    pub tvdb_id: Option<u64>,
    /// 1900..=2099.
    pub year: Option<u16>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    /// 480, 576, 720, 1080 or 2160.
    pub resolution: Option<u32>,
    /// `bluray`, `webdl`, `webrip`, `hdtv`, `dvd` or `remux`.
    pub source: Option<String>,
    /// Radarr/Sonarr-style: `Bluray-1080p`, `WEBDL-2160p`, `WEBRip-720p`,
    /// `HDTV-1080p`, `Remux-2160p`; `DVD` whatever the resolution; the source
    /// alone (`Bluray`, `WEBDL`, `WEBRip`, `HDTV`, `Remux`) when the
    /// resolution is unknown; the resolution alone (`1080p`) when the source
    /// is unknown; `None` when both are unknown.
    pub quality_name: Option<String>,
    /// The trailing `-GRP` of the file stem: 2..=20 ASCII letters or digits,
    /// not all digits, not a quality word, and only after some release
    /// information (year, `S01E02`, resolution or source).
    pub release_group: Option<String>,
    /// For episodes: the file name text before `S01E02` (or `1x02`), id tags
    /// removed, dots and underscores turned into spaces, trimmed of spaces
    /// and dashes.
    pub series_title: Option<String>,
    /// For daily shows: the date in the name (`Show.2011.03.15`,
    /// `Show - 2011-03-15 - Guest`), see [`air_date`].
    pub air_date: Option<AirDate>,
}

/// A calendar date, as daily shows are numbered: always a real day
/// (1900-01-01..=2099-12-31, leap years counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AirDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl AirDate {
    /// The date, when it is a real day of 1900..=2099.
    pub fn new(year: u32, month: u32, day: u32) -> Option<AirDate> {
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if !(1900..=2099).contains(&year) || !(1..=days).contains(&day) {
            return None;
        }
        Some(AirDate {
            year: u16::try_from(year).ok()?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
        })
    }

    /// `YYYY-MM-DD` exactly (`PROTOCOL.md` §2.2's `airDate`).
    pub fn parse_iso(text: &str) -> Option<AirDate> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let field = |range: Range<usize>| {
            let part = b.get(range.clone())?;
            digits(part, 4).filter(|&(_, len)| len == part.len())
        };
        AirDate::new(field(0..4)?.0, field(5..7)?.0, field(8..10)?.0)
    }
}

impl std::fmt::Display for AirDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The first date in `text` written as daily shows are named: a year,
/// a two-digit month and a two-digit day joined by one `.`, `-`, `_` or
/// space each (the same one twice), as in `Show.2011.03.15.720p` or
/// Sonarr's `Show - 2011-03-15 - Guest`. The whole text is read (a title
/// has no extension to drop); a date that is not a real day is no date.
pub fn air_date(text: &str) -> Option<AirDate> {
    dated(text, &tokens(text, &[])).map(|(date, _)| date)
}

/// [`air_date`] over `text`'s `tokens`, with where the date starts.
fn dated(text: &str, tokens: &[Token]) -> Option<(AirDate, usize)> {
    let bytes = text.as_bytes();
    tokens.windows(3).find_map(|w| {
        let (y, m, d) = (&w[0], &w[1], &w[2]);
        let sep = *bytes.get(y.end)?;
        let joined = matches!(sep, b'.' | b'-' | b'_' | b' ')
            && m.start == y.end + 1
            && d.start == m.end + 1
            && bytes.get(m.end) == Some(&sep);
        let two_digits =
            |t: &Token| t.text.len() == 2 && t.text.bytes().all(|b| b.is_ascii_digit());
        if !joined || !two_digits(m) || !two_digits(d) {
            return None;
        }
        let day = |t: &Token| t.text.parse::<u32>().ok();
        AirDate::new(u32::from(year(y.text)?), day(m)?, day(d)?).map(|date| (date, y.start))
    })
}

/// Reads the facts out of `file_name`, the bare file name
/// (`The.Matrix.1999.1080p.BluRay.x264-GRP.mkv`), and `folders`, the parent
/// folder names inside the library, outermost first
/// (`["The Matrix (1999) {tmdb-603}"]`).
///
/// The extension (from the last `.`) is ignored. Ids in the file name win
/// over ids in folders, and the innermost folder wins over outer ones; within
/// one name the first valid tag of a kind wins. Malformed tags (`{tmdb-}`,
/// `{tmdb-12a}`, a number beyond `u64`, an imdb id without `tt`) are ignored.
///
/// The year is the last 1900..=2099 token of the stem other than its first
/// token (`2001.A.Space.Odyssey.1968` gives 1968, while `1917.mkv` gives no
/// year: a leading number is usually the title) and, for episodes, before
/// `S01E02`; otherwise the last `(1999)` of the innermost folder that has
/// one. Season and episode come from `S01E02` (1..=4 digits each; `S01E02E03`
/// gives episode 2) or `1x02` (1..=2 digit season, 2..=3 digit episode, as
/// Sonarr reads it, so `1920x1080` is not an episode); a `Season 01` folder
/// gives the season when the file name does not. Resolution and source are
/// only read after the title, that is from the first year or episode token
/// on when there is one, so `Charlottes.Web.2006.DVDRip` is a DVD: the first
/// resolution token wins, `Remux` wins over any other source, otherwise the
/// last source token wins.
pub fn parse(file_name: &str, folders: &[&str]) -> NameFacts {
    let stem = stem(file_name);
    let (file_ids, spans) = scan_tags(stem);
    let tokens = tokens(stem, &spans);
    let marks = classify(&tokens);

    let episode_at = marks.iter().position(|m| matches!(m, Mark::Episode(..)));
    let year_limit = episode_at.unwrap_or(tokens.len());
    let year_candidates = || (1..year_limit).filter(|&i| matches!(marks[i], Mark::Year(_)));
    let year_at = year_candidates().next_back();
    let title_end = match (year_candidates().next(), episode_at) {
        (Some(y), Some(e)) => y.min(e),
        (Some(i), None) | (None, Some(i)) => i,
        (None, None) => 0,
    };
    let after_title = marks.get(title_end..).unwrap_or(&[]);

    let mut facts = NameFacts::default();

    // Ids: the file name first, then folders from the innermost outwards.
    let folder_ids: Vec<Ids> = folders.iter().rev().map(|f| scan_tags(f).0).collect();
    let mut all_ids = std::iter::once(&file_ids).chain(folder_ids.iter());
    facts.tmdb_id = all_ids.clone().find_map(|i| i.tmdb);
    facts.tvdb_id = all_ids.clone().find_map(|i| i.tvdb);
    facts.imdb_id = all_ids.find_map(|i| i.imdb.clone());

    facts.year = match year_at.map(|i| &marks[i]) {
        Some(Mark::Year(y)) => Some(*y),
        _ => folders.iter().rev().find_map(|f| folder_year(f)),
    };

    let dated = dated(stem, &tokens);
    facts.air_date = dated.map(|(date, _)| date);
    if let Some(i) = episode_at
        && let Mark::Episode(season, episode) = marks[i]
    {
        facts.season = Some(season);
        facts.episode = Some(episode);
        facts.series_title = clean_title(stem, tokens[i].start, &spans);
    } else {
        facts.season = folders.iter().rev().find_map(|f| folder_season(f));
        if let Some((_, start)) = dated {
            // A daily show: its title ends where its date begins.
            facts.series_title = clean_title(stem, start, &spans);
        }
    }

    facts.resolution = after_title.iter().find_map(|m| match m {
        Mark::Resolution(r) => Some(*r),
        _ => None,
    });
    let mut sources = after_title.iter().filter_map(|m| match m {
        Mark::Source(s) => Some(*s),
        _ => None,
    });
    let source = if sources.clone().any(|s| s == Source::Remux) {
        Some(Source::Remux)
    } else {
        sources.next_back()
    };
    facts.source = source.map(|s| s.as_str().to_string());
    facts.quality_name = quality_name(source, facts.resolution);
    facts.release_group = release_group(stem, &tokens, &marks, &spans);
    facts
}

/// Everything before the last `.`, or the whole name when it has none.
fn stem(file_name: &str) -> &str {
    match file_name.rfind('.') {
        Some(dot) => &file_name[..dot],
        None => file_name,
    }
}

/// The ids one name carries.
#[derive(Debug, Default)]
struct Ids {
    tmdb: Option<u64>,
    imdb: Option<String>,
    tvdb: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum IdKind {
    Tmdb,
    Imdb,
    Tvdb,
}

/// Finds the id tags of `s`: the first valid id of each kind, and the byte
/// ranges of every recognised tag (valid or not, brackets included), which
/// the tokenizer skips so that `{tmdb-2001}` is not a year.
fn scan_tags(s: &str) -> (Ids, Vec<Range<usize>>) {
    let bytes = s.as_bytes();
    let mut ids = Ids::default();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let close = match bytes[i] {
            b'{' => b'}',
            b'[' => b']',
            _ => {
                i += 1;
                continue;
            }
        };
        let Some(len) = bytes[i + 1..].iter().position(|&b| b == close) else {
            i += 1;
            continue;
        };
        let end = i + 1 + len;
        // `i + 1` and `end` are positions next to ASCII bytes: char boundaries.
        let Some((kind, value)) = s.get(i + 1..end).and_then(split_tag) else {
            i += 1;
            continue;
        };
        match kind {
            IdKind::Tmdb => ids.tmdb = ids.tmdb.or_else(|| number(value)),
            IdKind::Tvdb => ids.tvdb = ids.tvdb.or_else(|| number(value)),
            IdKind::Imdb => ids.imdb = ids.imdb.take().or_else(|| imdb(value)),
        }
        spans.push(i..end + 1);
        i = end + 1;
    }
    (ids, spans)
}

/// `tmdb-603` → (Tmdb, "603"); `None` when the key is not an id tag.
fn split_tag(content: &str) -> Option<(IdKind, &str)> {
    let (key, value) = content.split_once('-')?;
    let kind = [
        ("tmdb", IdKind::Tmdb),
        ("tmdbid", IdKind::Tmdb),
        ("imdb", IdKind::Imdb),
        ("imdbid", IdKind::Imdb),
        ("tvdb", IdKind::Tvdb),
        ("tvdbid", IdKind::Tvdb),
    ]
    .into_iter()
    .find(|(name, _)| key.eq_ignore_ascii_case(name))?
    .1;
    Some((kind, value))
}

/// A non-empty run of ASCII digits that fits in a `u64`.
fn number(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `tt` (any case) and 1..=10 digits, normalised to lowercase `tt`.
fn imdb(value: &str) -> Option<String> {
    let digits = value
        .get(..2)
        .filter(|tt| tt.eq_ignore_ascii_case("tt"))
        .and_then(|_| value.get(2..))?;
    let ok = (1..=10).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("tt{digits}"))
}

/// A run of alphanumeric characters (Unicode-aware) outside id tags.
#[derive(Debug)]
struct Token<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

/// Splits `s` on every non-alphanumeric character and on the id tags in
/// `spans` (sorted, disjoint, as `scan_tags` returns them).
fn tokens<'a>(s: &'a str, spans: &[Range<usize>]) -> Vec<Token<'a>> {
    let mut out = Vec::new();
    let mut start = None;
    let mut span = spans.iter().peekable();
    let push = |from: usize, to: usize, out: &mut Vec<Token<'a>>| {
        if let Some(text) = s.get(from..to) {
            out.push(Token {
                start: from,
                end: to,
                text,
            });
        }
    };
    for (i, c) in s.char_indices() {
        while span.next_if(|r| r.end <= i).is_some() {}
        let in_tag = span.peek().is_some_and(|r| r.contains(&i));
        let inside = c.is_alphanumeric() && !in_tag;
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(from)) => {
                push(from, i, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        push(from, s.len(), &mut out);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Bluray,
    Webdl,
    Webrip,
    Hdtv,
    Dvd,
    Remux,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Bluray => "bluray",
            Source::Webdl => "webdl",
            Source::Webrip => "webrip",
            Source::Hdtv => "hdtv",
            Source::Dvd => "dvd",
            Source::Remux => "remux",
        }
    }
}

/// What one token means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Year(u16),
    Resolution(u32),
    Source(Source),
    Episode(u32, u32),
    /// The second half of a two-token source (`Ray` of `Blu-Ray`).
    PairTail,
    Plain,
}

fn classify(tokens: &[Token]) -> Vec<Mark> {
    let mut marks = vec![Mark::Plain; tokens.len()];
    for (i, token) in tokens.iter().enumerate() {
        if marks[i] == Mark::PairTail {
            continue;
        }
        let t = token.text;
        // The next token, when only one delimiter byte separates it.
        let next = tokens
            .get(i + 1)
            .filter(|n| n.start == token.end + 1)
            .map(|n| n.text);
        let is = |word: &str| t.eq_ignore_ascii_case(word);
        let next_is = |word: &str| next.is_some_and(|n| n.eq_ignore_ascii_case(word));
        let (mark, pair) = if let Some(y) = year(t) {
            (Mark::Year(y), false)
        } else if let Some(r) = resolution(t) {
            (Mark::Resolution(r), false)
        } else if let Some(e) = episode(t) {
            (Mark::Episode(e.0, e.1), false)
        } else if is("blu") && next_is("ray") {
            (Mark::Source(Source::Bluray), true)
        } else if is("web") && next_is("dl") {
            (Mark::Source(Source::Webdl), true)
        } else if is("web") && next_is("rip") {
            (Mark::Source(Source::Webrip), true)
        } else if let Some(src) = source(t) {
            (Mark::Source(src), false)
        } else {
            (Mark::Plain, false)
        };
        marks[i] = mark;
        if pair && let Some(m) = marks.get_mut(i + 1) {
            *m = Mark::PairTail;
        }
    }
    marks
}

/// Exactly four ASCII digits in 1900..=2099.
fn year(t: &str) -> Option<u16> {
    let b = t.as_bytes();
    if b.len() != 4 {
        return None;
    }
    let (value, _) = digits(b, 4)?;
    u16::try_from(value)
        .ok()
        .filter(|y| (1900..=2099).contains(y))
}

/// `480p`, `576p`, `720p`, `1080p`, `2160p`, `4k`, `UHD`.
fn resolution(t: &str) -> Option<u32> {
    if t.eq_ignore_ascii_case("4k") || t.eq_ignore_ascii_case("uhd") {
        return Some(2160);
    }
    let b = t.as_bytes();
    let (last, number) = b.split_last()?;
    if !last.eq_ignore_ascii_case(&b'p') {
        return None;
    }
    let (value, len) = digits(number, 4)?;
    (len == number.len() && [480, 576, 720, 1080, 2160].contains(&value)).then_some(value)
}

fn source(t: &str) -> Option<Source> {
    let words: [(&str, Source); 11] = [
        ("bluray", Source::Bluray),
        ("bdrip", Source::Bluray),
        ("brrip", Source::Bluray),
        ("webdl", Source::Webdl),
        ("web", Source::Webdl),
        ("webrip", Source::Webrip),
        ("hdtv", Source::Hdtv),
        ("dvd", Source::Dvd),
        ("dvdrip", Source::Dvd),
        ("remux", Source::Remux),
        ("bdremux", Source::Remux),
    ];
    words
        .into_iter()
        .find(|(word, _)| t.eq_ignore_ascii_case(word))
        .map(|(_, s)| s)
}

/// `S01E02` (trailing text such as `E03` allowed) or `1x02`.
fn episode(t: &str) -> Option<(u32, u32)> {
    let b = t.as_bytes();
    let first = *b.first()?;
    if first.eq_ignore_ascii_case(&b's') {
        let rest = b.get(1..)?;
        let (season, n) = digits(rest, 4)?;
        let rest = rest.get(n..)?;
        if !rest.first()?.eq_ignore_ascii_case(&b'e') {
            return None;
        }
        let (episode, _) = digits(rest.get(1..)?, 4)?;
        return Some((season, episode));
    }
    let (season, n) = digits(b, 2)?;
    let rest = b.get(n..)?;
    if !rest.first()?.eq_ignore_ascii_case(&b'x') {
        return None;
    }
    let rest = rest.get(1..)?;
    let (episode, m) = digits(rest, 3)?;
    (m >= 2 && m == rest.len()).then_some((season, episode))
}

/// The leading run of ASCII digits of `b`, when it has 1..=`max` of them
/// (`max` ≤ 9, so the value fits a `u32`): its value and its length.
fn digits(b: &[u8], max: usize) -> Option<(u32, usize)> {
    let len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || len > max.min(9) {
        return None;
    }
    let value = b
        .get(..len)?
        .iter()
        .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'));
    Some((value, len))
}

/// The last `(1999)` of a folder name.
fn folder_year(folder: &str) -> Option<u16> {
    folder.as_bytes().windows(6).rev().find_map(|w| match w {
        [b'(', d @ .., b')'] => year(std::str::from_utf8(d).ok()?),
        _ => None,
    })
}

/// `Season 01`, `Season 1`, `season.2` (the whole folder name).
fn folder_season(folder: &str) -> Option<u32> {
    let b = folder.trim().as_bytes();
    let word = b.get(..6)?;
    if !word.eq_ignore_ascii_case(b"season") {
        return None;
    }
    let rest = b.get(6..)?;
    let gap = rest
        .iter()
        .take_while(|c| matches!(c, b' ' | b'.' | b'_' | b'-'))
        .count();
    let rest = rest.get(gap..)?;
    let (season, len) = digits(rest, 4)?;
    (len == rest.len()).then_some(season)
}

/// The text of `stem` before byte `end`, id tags as spaces, dots and
/// underscores as spaces, runs of spaces collapsed, spaces and dashes trimmed.
fn clean_title(stem: &str, end: usize, spans: &[Range<usize>]) -> Option<String> {
    let mut spaced = String::new();
    let mut from = 0;
    // `end` is a token's start, so no tag straddles it.
    for tag in spans.iter().take_while(|r| r.end <= end) {
        spaced.push_str(stem.get(from..tag.start)?);
        spaced.push(' ');
        from = tag.end;
    }
    spaced.push_str(stem.get(from..end)?);
    let spaced = spaced.replace(['.', '_'], " ");
    let joined = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    let title = joined.trim_matches(|c: char| c == '-' || c.is_whitespace());
    (!title.is_empty()).then(|| title.to_string())
}

fn quality_name(source: Option<Source>, resolution: Option<u32>) -> Option<String> {
    let prefix = match source {
        Some(Source::Dvd) => return Some("DVD".to_string()),
        Some(Source::Bluray) => "Bluray",
        Some(Source::Webdl) => "WEBDL",
        Some(Source::Webrip) => "WEBRip",
        Some(Source::Hdtv) => "HDTV",
        Some(Source::Remux) => "Remux",
        None => return resolution.map(|r| format!("{r}p")),
    };
    Some(match resolution {
        Some(r) => format!("{prefix}-{r}p"),
        None => prefix.to_string(),
    })
}

/// The last token of the stem (trailing spaces and id tags aside) when a
/// `-` precedes it and it looks like a group, not a title word or a quality.
fn release_group(
    stem: &str,
    tokens: &[Token],
    marks: &[Mark],
    spans: &[Range<usize>],
) -> Option<String> {
    let mut end = stem.len();
    let mut trailing = spans.iter().rev().peekable();
    loop {
        end = stem.get(..end)?.trim_end().len();
        while trailing.next_if(|r| r.end > end).is_some() {}
        match trailing.next_if(|r| r.end == end) {
            Some(r) => end = r.start,
            None => break,
        }
    }
    let last = tokens.len().checked_sub(1)?;
    let token = &tokens[last];
    let dash = token.start.checked_sub(1)?;
    let t = token.text;
    let looks_like_group = token.end == end
        && stem.as_bytes().get(dash) == Some(&b'-')
        && (2..=20).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_alphanumeric())
        && !t.bytes().all(|b| b.is_ascii_digit())
        && marks[last] == Mark::Plain;
    let release_info_before = marks[..last].iter().enumerate().any(|(i, m)| match m {
        Mark::Year(_) => i > 0,
        Mark::Resolution(_) | Mark::Source(_) | Mark::Episode(..) => true,
        Mark::PairTail | Mark::Plain => false,
    });
    (looks_like_group && release_info_before).then(|| t.to_string())
}

/// `tt0133093` or `0133093` → 133093.
pub fn imdb_number(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("tt").unwrap_or(s);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A release's file name as `PROTOCOL.md` §2.2 allows it, checked where a
/// peer's name is taken (a download's lookup, a stub built for the *arr
/// apps, a search listing) and where this node offers one (the
/// catalogue). See [`file_name_problem`].
pub fn safe_file_name(name: &str) -> bool {
    file_name_problem(name).is_none()
}

/// What is wrong with `name` as a release's file name, `None` when nothing
/// is: a bare name ([`bare_file_name`]), not hidden, without whitespace at
/// either end, not a name of an unfinished file (`.part`, `.partial`, in
/// any case) nor of the node's own temporary files (`.jack-*`,
/// `*.partial~`, `*.written`: a completed file under such a name would be
/// taken for jack's own and removed at the next start).
pub fn file_name_problem(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if !bare_file_name(name) {
        Some(
            "not a bare file name (empty, . or .., a separator, a control character, over 255 bytes)",
        )
    } else if lower.starts_with(".jack-")
        || lower.ends_with(".partial~")
        || lower.ends_with(".written")
    {
        Some("a name of jack's own temporary files")
    } else if name.starts_with('.') {
        Some("a hidden name")
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        Some("whitespace at its start or end")
    } else if lower.ends_with(".part") || lower.ends_with(".partial") {
        Some("the name of an unfinished file")
    } else {
        None
    }
}

/// A name that stays inside the folder it is joined to: not empty, not
/// `.`/`..`, no separators, no control characters, at most 255 bytes. What
/// a stub's name in the watch folder must be before jack renames or removes
/// it.
pub fn bare_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        for ok in [
            "a.mkv",
            "The Matrix (1999).mkv",
            "日本語.mkv",
            "a .mkv",
            "movie.part.mkv",
            "x.jack-1.mkv",
        ] {
            assert!(safe_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b.mkv",
            "..\\x",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
            "movie.part",
            "movie.PARTIAL",
            ".hidden.mkv",
            ".jack-x.partial~",
            ".jack-probe-7",
            "x.partial~",
            "movie.mkv.written",
            "movie.mkv.Written",
            "  spaced.mkv  ",
            " lead.mkv",
            "trail.mkv ",
            "tab.mkv\t",
            "nbsp.mkv\u{a0}",
        ] {
            assert!(!safe_file_name(bad), "{bad:?}");
        }
        // A stub's name in the watch folder needs only to stay in it.
        for ok in [" x.torrent", "a.torrent"] {
            assert!(bare_file_name(ok), "{ok:?}");
        }
        for bad in ["", "..", "api/x.torrent", "a\nb"] {
            assert!(!bare_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn imdb_numbers() {
        assert_eq!(imdb_number("tt0133093"), Some(133093));
        assert_eq!(imdb_number("0133093"), Some(133093));
        assert_eq!(imdb_number("tt"), None);
        assert_eq!(imdb_number("tt12x"), None);
    }

    fn facts() -> NameFacts {
        NameFacts::default()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn air_dates_of_daily_shows() {
        let date = |y, m, d| AirDate::new(y, m, d);
        let cases: &[(&str, Option<AirDate>)] = &[
            (
                "The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP",
                date(2011, 3, 15),
            ),
            (
                "The Daily Show - 2011-03-15 - Guest HDTV-720p",
                date(2011, 3, 15),
            ),
            ("Show_2012_02_29_Part", date(2012, 2, 29)),
            ("Show 1999 12 31", date(1999, 12, 31)),
            ("Show.2011.03.15", date(2011, 3, 15)),
            // Not a real day, or not one date.
            ("Show.2011.02.29", None),
            ("Show.2011.13.01", None),
            ("Show.2011.00.10", None),
            ("Show.2011.04.31", None),
            ("Show.2011.03-15", None),
            ("Show.2011..03.15", None),
            ("Show.2011.3.15", None),
            ("Show.2011.003.15", None),
            ("Show.1800.03.15", None),
            ("Show.S01E02.720p", None),
            ("Movie.2011.1080p.BluRay", None),
            ("Ｓhow.２０１１.０３.１５", None),
            // The first real date wins.
            ("Show.2011.02.30.2011.03.01", date(2011, 3, 1)),
        ];
        for (text, want) in cases {
            assert_eq!(air_date(text), *want, "{text}");
        }
        let table: &[(&str, Option<AirDate>)] = &[
            ("2011-03-15", date(2011, 3, 15)),
            ("2000-02-29", date(2000, 2, 29)),
            ("1900-02-29", None),
            ("2011-3-15", None),
            ("2011/03/15", None),
            ("2011-03-15T00:00:00Z", None),
            ("+011-03-15", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(AirDate::parse_iso(text), *want, "{text}");
        }
        assert_eq!(date(2011, 3, 5).unwrap().to_string(), "2011-03-05");
    }

    #[test]
    fn reads_realistic_names() {
        let cases: Vec<(&str, Vec<&str>, NameFacts)> = vec![
            (
                "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv",
                vec!["The Matrix (1999) {tmdb-603}"],
                NameFacts {
                    tmdb_id: Some(603),
                    year: Some(1999),
                    resolution: Some(1080),
                    source: s("bluray"),
                    quality_name: s("Bluray-1080p"),
                    release_group: s("GRP"),
                    ..facts()
                },
            ),
            (
                "The Matrix (1999) {imdb-tt0133093} [Bluray-2160p Remux].mkv",
                vec![],
                NameFacts {
                    imdb_id: s("tt0133093"),
                    year: Some(1999),
                    resolution: Some(2160),
                    source: s("remux"),
                    quality_name: s("Remux-2160p"),
                    ..facts()
                },
            ),
            (
                "2001.A.Space.Odyssey.1968.mkv",
                vec![],
                NameFacts {
                    year: Some(1968),
                    ..facts()
                },
            ),
            (
                "1917.2019.1080p.mkv",
                vec![],
                NameFacts {
                    year: Some(2019),
                    resolution: Some(1080),
                    quality_name: s("1080p"),
                    ..facts()
                },
            ),
            (
                "1917.mkv",
                vec!["1917 (2019) [tmdbid-530915]"],
                NameFacts {
                    tmdb_id: Some(530_915),
                    year: Some(2019),
                    ..facts()
                },
            ),
            (
                "Blade.Runner.2049.2017.2160p.UHD.BluRay.REMUX.HDR.HEVC-FGT.mkv",
                vec![],
                NameFacts {
                    year: Some(2017),
                    resolution: Some(2160),
                    source: s("remux"),
                    quality_name: s("Remux-2160p"),
                    release_group: s("FGT"),
                    ..facts()
                },
            ),
            (
                "The.Office.US.S01E02.Diversity.Day.720p.WEB-DL.DD5.1.H.264-NTb.mkv",
                vec!["The Office (US) {tvdb-73244}", "Season 01"],
                NameFacts {
                    tvdb_id: Some(73_244),
                    season: Some(1),
                    episode: Some(2),
                    resolution: Some(720),
                    source: s("webdl"),
                    quality_name: s("WEBDL-720p"),
                    release_group: s("NTb"),
                    series_title: s("The Office US"),
                    ..facts()
                },
            ),
            (
                "The.Daily.Show.2011.03.15.720p.HDTV.x264-GRP.mkv",
                vec!["The Daily Show {tvdb-71256}", "Season 2011"],
                NameFacts {
                    tvdb_id: Some(71_256),
                    year: Some(2011),
                    season: Some(2011),
                    resolution: Some(720),
                    source: s("hdtv"),
                    quality_name: s("HDTV-720p"),
                    release_group: s("GRP"),
                    series_title: s("The Daily Show"),
                    air_date: AirDate::new(2011, 3, 15),
                    ..facts()
                },
            ),
            (
                "The Daily Show - 2011-03-15 - Guest Name HDTV-720p.mkv",
                vec![],
                NameFacts {
                    year: Some(2011),
                    resolution: Some(720),
                    source: s("hdtv"),
                    quality_name: s("HDTV-720p"),
                    series_title: s("The Daily Show"),
                    air_date: AirDate::new(2011, 3, 15),
                    ..facts()
                },
            ),
            (
                "Breaking Bad (2008) - S05E14 - Ozymandias [Bluray-1080p].mkv",
                vec!["Breaking Bad (2008) [tvdbid-81189]", "Season 5"],
                NameFacts {
                    tvdb_id: Some(81_189),
                    year: Some(2008),
                    season: Some(5),
                    episode: Some(14),
                    resolution: Some(1080),
                    source: s("bluray"),
                    quality_name: s("Bluray-1080p"),
                    series_title: s("Breaking Bad (2008)"),
                    ..facts()
                },
            ),
            (
                "show_name.s1e2e3.hdtv.mkv",
                vec![],
                NameFacts {
                    season: Some(1),
                    episode: Some(2),
                    source: s("hdtv"),
                    quality_name: s("HDTV"),
                    series_title: s("show name"),
                    ..facts()
                },
            ),
            (
                "Firefly 1x02 The Train Job.avi",
                vec![],
                NameFacts {
                    season: Some(1),
                    episode: Some(2),
                    series_title: s("Firefly"),
                    ..facts()
                },
            ),
            (
                "Sample.1920x1080.mkv",
                vec!["Season 3"],
                NameFacts {
                    season: Some(3),
                    ..facts()
                },
            ),
            (
                "Episode 4.mkv",
                vec!["Show {tvdb-1}", "season.12"],
                NameFacts {
                    tvdb_id: Some(1),
                    season: Some(12),
                    ..facts()
                },
            ),
            (
                "Movie {tmdb-11}.mkv",
                vec!["Outer {tmdb-33}", "Inner {tmdb-22} {imdb-tt22}"],
                NameFacts {
                    tmdb_id: Some(11),
                    imdb_id: s("tt22"),
                    ..facts()
                },
            ),
            (
                "Movie.mkv",
                vec!["Outer (1990) {tmdb-33}", "Inner (1991) {tmdb-22}"],
                NameFacts {
                    tmdb_id: Some(22),
                    year: Some(1991),
                    ..facts()
                },
            ),
            (
                "Bad {tmdb-} {tmdb-12a} {tmdb-99999999999999999999999}.mkv",
                vec!["Folder {tmdb-7}"],
                NameFacts {
                    tmdb_id: Some(7),
                    ..facts()
                },
            ),
            (
                "Bad [imdbid-603] {imdb-tt} {imdb-tt12345678901} {tvdb-+5}.mkv",
                vec![],
                NameFacts::default(),
            ),
            (
                "Tags {TMDBID-603} [IMDBID-TT0133093] [tvdbid-2001] {tmdb-604}.mkv",
                vec![],
                NameFacts {
                    tmdb_id: Some(603),
                    imdb_id: s("tt0133093"),
                    tvdb_id: Some(2001),
                    ..facts()
                },
            ),
            (
                "Amélie.2001.1080p.mkv",
                vec![],
                NameFacts {
                    year: Some(2001),
                    resolution: Some(1080),
                    quality_name: s("1080p"),
                    ..facts()
                },
            ),
            (
                "千と千尋の神隠し.2001.mkv",
                vec!["千と千尋の神隠し (2001) {tmdb-129}"],
                NameFacts {
                    tmdb_id: Some(129),
                    year: Some(2001),
                    ..facts()
                },
            ),
            (
                "千と千尋の神隠し.S01E02.mkv",
                vec![],
                NameFacts {
                    season: Some(1),
                    episode: Some(2),
                    series_title: s("千と千尋の神隠し"),
                    ..facts()
                },
            ),
            (
                "Charlottes.Web.2006.DVDRip.XviD-GRP.avi",
                vec![],
                NameFacts {
                    year: Some(2006),
                    source: s("dvd"),
                    quality_name: s("DVD"),
                    release_group: s("GRP"),
                    ..facts()
                },
            ),
            (
                "Movie.2020.1080p.WEB-DL.mkv",
                vec![],
                NameFacts {
                    year: Some(2020),
                    resolution: Some(1080),
                    source: s("webdl"),
                    quality_name: s("WEBDL-1080p"),
                    ..facts()
                },
            ),
            (
                "Movie (2021) WEBRip-720p.mp4",
                vec![],
                NameFacts {
                    year: Some(2021),
                    resolution: Some(720),
                    source: s("webrip"),
                    quality_name: s("WEBRip-720p"),
                    ..facts()
                },
            ),
            (
                "Old.Movie.1955.576p.Blu-Ray-Grp42.mkv",
                vec![],
                NameFacts {
                    year: Some(1955),
                    resolution: Some(576),
                    source: s("bluray"),
                    quality_name: s("Bluray-576p"),
                    release_group: s("Grp42"),
                    ..facts()
                },
            ),
            ("Spider-Man.mkv", vec![], NameFacts::default()),
            (
                "Movie.2019.4K.x265-ThisGroupNameIsFarTooLong.mkv",
                vec![],
                NameFacts {
                    year: Some(2019),
                    resolution: Some(2160),
                    quality_name: s("2160p"),
                    ..facts()
                },
            ),
            (
                "Movie.2019.720p.HDTV-GRP {tmdb-5}.mkv",
                vec![],
                NameFacts {
                    tmdb_id: Some(5),
                    year: Some(2019),
                    resolution: Some(720),
                    source: s("hdtv"),
                    quality_name: s("HDTV-720p"),
                    release_group: s("GRP"),
                    ..facts()
                },
            ),
            (
                "Show{tvdb-9}Name - 3x101 - Title.mkv",
                vec![],
                NameFacts {
                    tvdb_id: Some(9),
                    season: Some(3),
                    episode: Some(101),
                    series_title: s("Show Name"),
                    ..facts()
                },
            ),
            (
                "Show.S2024E0101.mkv",
                vec![],
                NameFacts {
                    season: Some(2024),
                    episode: Some(101),
                    series_title: s("Show"),
                    ..facts()
                },
            ),
            ("Show.S12345E01.mkv", vec![], NameFacts::default()),
            (
                "Doctor.Who.2005.S01E01.Rose.1963.mkv",
                vec![],
                NameFacts {
                    year: Some(2005),
                    season: Some(1),
                    episode: Some(1),
                    series_title: s("Doctor Who 2005"),
                    ..facts()
                },
            ),
            ("", vec![], NameFacts::default()),
            (".mkv", vec![""], NameFacts::default()),
            ("...---[]{}().", vec!["{[", "]}"], NameFacts::default()),
            ("NoExtension", vec!["Season"], NameFacts::default()),
        ];
        assert!(cases.len() >= 20);
        for (file, folders, want) in cases {
            assert_eq!(parse(file, &folders), want, "{file} in {folders:?}");
        }
    }

    /// The retry module's seeded generator: every run feeds the same input.
    struct Rng(crate::download::retry::SeededRng);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0.next_u64()
        }

        fn below(&mut self, n: usize) -> usize {
            self.0.index(n)
        }

        /// Random bytes mixed with fragments the parser reacts to.
        fn name(&mut self) -> String {
            const PIECES: &[&[u8]] = &[
                b"{tmdb-",
                b"[imdbid-tt",
                b"{tvdb-",
                b"}",
                b"]",
                b"S01E",
                b"x",
                b"2001",
                b"1080p",
                b"Blu-Ray",
                b"WEB-DL",
                b"Remux",
                b"-GRP",
                b"Season ",
                b"(1999)",
                b"99999999999999999999999",
                "é千".as_bytes(),
                b".",
                b" ",
                b"-",
            ];
            let mut bytes = Vec::new();
            for _ in 0..self.below(24) {
                if self.next().is_multiple_of(2) {
                    bytes.extend_from_slice(PIECES[self.below(PIECES.len())]);
                } else {
                    bytes.push(self.next().to_le_bytes()[0]);
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    #[test]
    fn never_panics_on_random_names() {
        let mut rng = Rng(crate::download::retry::SeededRng::new(
            0x9E37_79B9_7F4A_7C15,
        ));
        for _ in 0..5000 {
            let file = rng.name();
            let folders: Vec<String> = (0..rng.below(4)).map(|_| rng.name()).collect();
            let folders: Vec<&str> = folders.iter().map(String::as_str).collect();
            let facts = parse(&file, &folders);
            if let Some(imdb) = &facts.imdb_id {
                assert!(imdb.starts_with("tt"), "{imdb} from {file:?}");
            }
            if let Some(year) = facts.year {
                assert!((1900..=2099).contains(&year), "{year} from {file:?}");
            }
        }
    }
}
