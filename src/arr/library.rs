//! A Radarr or Sonarr as a library source: the movies and episodes that
//! have a file, with the ids the *arr knows.
//!
//! [`ArrLibrary::fetch`] asks the *arr (`/api/v3/rootfolder`, then
//! `/api/v3/movie`, or `/api/v3/series` and, for each series with files,
//! `/api/v3/episodefile?seriesId=` and `/api/v3/episode?seriesId=`) and
//! turns the answers into [`Entry`]s with pure functions ([`movie_entries`],
//! [`episode_entries`]). It is called by the catalogue thread only, at
//! start-up and on the rescan interval, never on the request path. It does
//! not touch the files: the catalogue checks each path (a regular file
//! inside one of the *arr's root folders) before serving it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::arr::client::{ArrClient, ArrError};
use crate::config::{Arr, ArrKind};
use crate::naming::NameFacts;

/// The longest one request to the *arr may take (a large library's
/// `/api/v3/movie` takes seconds on a NAS).
pub const FETCH_DEADLINE: Duration = Duration::from_secs(120);

/// One file the *arr knows, and what it says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The *arr's id of the file (`movieFile.id`, episode file `id`): the
    /// item id is made from it, so it survives renames and restarts.
    pub file_id: u64,
    /// Where the *arr says the file is.
    pub path: PathBuf,
    pub title: String,
    /// The ids, year, season, first episode and quality, as a folder
    /// library's names would give them (`source` in the same words).
    pub facts: NameFacts,
    /// The last episode of a multi-episode file.
    pub episode_last: Option<u32>,
}

/// What one fetch found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The *arr's root folders (`/api/v3/rootfolder`): only files inside
    /// one of them are served.
    pub root_folders: Vec<PathBuf>,
    pub entries: Vec<Entry>,
    /// Files left out because `room` was reached (counted, not fetched).
    pub left_out: usize,
}

/// The source of one `kind = "radarr"|"sonarr"` library.
#[derive(Debug, Clone)]
pub struct ArrLibrary {
    client: ArrClient,
}

impl ArrLibrary {
    pub fn new(arr: &Arr) -> ArrLibrary {
        ArrLibrary {
            client: ArrClient::new(arr, FETCH_DEADLINE),
        }
    }

    pub fn arr(&self) -> &Arr {
        self.client.arr()
    }

    /// Asks the *arr for its root folders and every file it has, keeping at
    /// most `room` entries. Gives up (an error) as soon as `cancel` is set
    /// or any answer fails: a library is taken whole or not at all.
    pub fn fetch(&self, cancel: &AtomicBool, room: usize) -> Result<Listing, ArrError> {
        let roots: Vec<RootFolder> = self.client.get("/api/v3/rootfolder")?;
        let root_folders = roots.into_iter().map(|r| PathBuf::from(r.path)).collect();
        let mut listing = Listing {
            root_folders,
            ..Listing::default()
        };
        match self.arr().kind {
            ArrKind::Radarr => {
                let movies: Vec<Movie> = self.client.get("/api/v3/movie")?;
                let mut entries = movie_entries(&movies);
                listing.left_out = entries.len().saturating_sub(room);
                entries.truncate(room);
                listing.entries = entries;
            }
            ArrKind::Sonarr => {
                let series: Vec<Series> = self.client.get("/api/v3/series")?;
                for s in &series {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(ArrError::Unavailable("scan cancelled".into()));
                    }
                    let known = s.statistics.as_ref().and_then(|st| st.episode_file_count);
                    if known == Some(0) {
                        continue;
                    }
                    if listing.entries.len() >= room {
                        listing.left_out += known.unwrap_or(0) as usize;
                        continue;
                    }
                    let files: Vec<EpisodeFile> = self
                        .client
                        .get(&format!("/api/v3/episodefile?seriesId={}", s.titled.id))?;
                    let episodes: Vec<Episode> = self
                        .client
                        .get(&format!("/api/v3/episode?seriesId={}", s.titled.id))?;
                    let mut entries = episode_entries(s, &files, &episodes);
                    let fits = room - listing.entries.len();
                    listing.left_out += entries.len().saturating_sub(fits);
                    entries.truncate(fits);
                    listing.entries.append(&mut entries);
                }
            }
        }
        Ok(listing)
    }
}

/// `GET /api/v3/rootfolder` element.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootFolder {
    pub path: String,
}

/// What a movie and a series both say (the fields jack reads).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Titled {
    pub id: u64,
    pub title: String,
    pub year: Option<u32>,
    pub tmdb_id: Option<u64>,
    pub imdb_id: Option<String>,
    /// The movie's or the series' folder.
    pub path: Option<String>,
}

/// `GET /api/v3/movie` element.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Movie {
    #[serde(flatten)]
    pub titled: Titled,
    pub movie_file: Option<MovieFile>,
}

/// `GET /api/v3/series` element.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Series {
    #[serde(flatten)]
    pub titled: Titled,
    pub tvdb_id: Option<u64>,
    pub statistics: Option<SeriesStatistics>,
    /// `standard`, `daily` or `anime`.
    pub series_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeriesStatistics {
    pub episode_file_count: Option<u32>,
}

/// What a movie file and an episode file both say.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaFile {
    pub id: u64,
    pub path: Option<String>,
    pub relative_path: Option<String>,
    pub scene_name: Option<String>,
    pub release_group: Option<String>,
    pub quality: Option<QualityModel>,
}

/// `movieFile` of a movie.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MovieFile {
    #[serde(flatten)]
    pub file: MediaFile,
    pub edition: Option<String>,
}

/// `GET /api/v3/episodefile?seriesId=` element.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EpisodeFile {
    #[serde(flatten)]
    pub file: MediaFile,
    pub season_number: Option<u32>,
}

/// `GET /api/v3/episode?seriesId=` element.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Episode {
    pub season_number: Option<u32>,
    pub episode_number: Option<u32>,
    pub episode_file_id: Option<u64>,
    /// `YYYY-MM-DD`, the day it aired where it aired.
    pub air_date: Option<String>,
}

/// `quality` of a movie or episode file: `{"quality": {...}, "revision": {...}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QualityModel {
    pub quality: Option<Quality>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Quality {
    pub name: Option<String>,
    pub source: Option<String>,
    pub resolution: Option<u32>,
    pub modifier: Option<String>,
}

/// One entry per movie that has a file. Pure.
pub fn movie_entries(movies: &[Movie]) -> Vec<Entry> {
    movies
        .iter()
        .filter_map(|m| {
            let movie_file = m.movie_file.as_ref()?;
            let t = &m.titled;
            let mut title = clean(&t.title).to_string();
            if let Some(y) = year(t.year) {
                title.push_str(&format!(" ({y})"));
            }
            if let Some(edition) = nonempty(movie_file.edition.as_deref()) {
                title.push_str(&format!(" {edition}"));
            }
            entry(t, &movie_file.file, title)
        })
        .collect()
}

/// One entry per episode file of `series`, its season and episodes from
/// `episodes` (an episode names its file by `episodeFileId`). A file no
/// episode names is left out. Pure.
pub fn episode_entries(series: &Series, files: &[EpisodeFile], episodes: &[Episode]) -> Vec<Entry> {
    let mut numbers: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
    // A daily show's episode is searched by the day it aired (Sonarr's
    // `season=<yyyy>&ep=<MM>/<dd>`): each file's first episode's day.
    let daily = series.series_type.as_deref() == Some("daily");
    let mut days: HashMap<u64, (u32, u32, crate::naming::AirDate)> = HashMap::new();
    for e in episodes {
        if let (Some(file), Some(season), Some(episode)) =
            (e.episode_file_id, e.season_number, e.episode_number)
            && file > 0
        {
            numbers.entry(file).or_default().push((season, episode));
            if let Some(day) = e.air_date.as_deref().and_then(crate::naming::air_date)
                && daily
                && days
                    .get(&file)
                    .is_none_or(|d| (season, episode) < (d.0, d.1))
            {
                days.insert(file, (season, episode, day));
            }
        }
    }
    let series_title = clean(&series.titled.title).to_string();
    files
        .iter()
        .filter_map(|f| {
            let mut eps = numbers.get(&f.file.id)?.clone();
            eps.sort_unstable();
            let season = f.season_number.unwrap_or(eps[0].0);
            let tags: String = eps.iter().map(|(_, e)| format!("E{e:02}")).collect();
            let day = days.get(&f.file.id).map(|d| d.2);
            let title = match day {
                Some(day) => format!("{series_title} - {day}"),
                None => format!("{series_title} - S{season:02}{tags}"),
            };
            let mut entry = entry(&series.titled, &f.file, title)?;
            if day.is_some() {
                entry.facts.air_date = day;
            }
            entry.facts.tvdb_id = series.tvdb_id.filter(|&id| id > 0);
            entry.facts.season = Some(season);
            entry.facts.episode = Some(eps[0].1);
            entry.episode_last = Some(eps[eps.len() - 1].1);
            entry.facts.series_title = Some(series_title.clone());
            Some(entry)
        })
        .collect()
}

/// The entry of `file` of the movie or series `of`, titled `title` unless
/// the file keeps its release name; `None` without an absolute path.
fn entry(of: &Titled, file: &MediaFile, title: String) -> Option<Entry> {
    let path = match (nonempty(file.path.as_deref()), nonempty(of.path.as_deref())) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(folder)) => Path::new(&folder).join(nonempty(file.relative_path.as_deref())?),
        _ => return None,
    };
    if !path.is_absolute() {
        return None;
    }
    let quality = Facts::of(file.quality.as_ref());
    Some(Entry {
        file_id: file.id,
        path,
        title: release_title(file.scene_name.as_deref(), title, &quality),
        facts: NameFacts {
            tmdb_id: of.tmdb_id.filter(|&id| id > 0),
            imdb_id: imdb(of.imdb_id.as_deref()),
            year: year(of.year),
            resolution: quality.resolution,
            source: quality.source.map(str::to_string),
            quality_name: quality.name,
            release_group: nonempty(file.release_group.as_deref()),
            ..NameFacts::default()
        },
        episode_last: None,
    })
}

fn year(y: Option<u32>) -> Option<u16> {
    y.and_then(|y| u16::try_from(y).ok()).filter(|&y| y > 0)
}

/// The release title: the name the file was released under when the *arr
/// kept it (`sceneName`), else the *arr's own default naming
/// (`The Matrix (1999) Bluray-1080p`, `Show - S01E02 - WEBDL-720p`), which
/// the *arr parses back without fail.
fn release_title(scene_name: Option<&str>, title: String, quality: &Facts) -> String {
    if let Some(scene) = scene_name.map(clean).filter(|s| !s.is_empty()) {
        return scene.to_string();
    }
    match &quality.name {
        Some(q) if title.contains(" - S") => format!("{title} - {q}"),
        Some(q) => format!("{title} {q}"),
        None => title,
    }
}

/// Quality facts from the *arr's quality model.
#[derive(Debug, Default)]
struct Facts {
    name: Option<String>,
    source: Option<&'static str>,
    resolution: Option<u32>,
}

impl Facts {
    fn of(model: Option<&QualityModel>) -> Facts {
        let Some(q) = model.and_then(|m| m.quality.as_ref()) else {
            return Facts::default();
        };
        let remux = q
            .modifier
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("remux"));
        let source = match q.source.as_deref().map(str::to_ascii_lowercase).as_deref() {
            _ if remux => Some("remux"),
            Some("bluray") => Some("bluray"),
            Some("blurayraw") => Some("remux"),
            Some("webdl" | "web") => Some("webdl"),
            Some("webrip") => Some("webrip"),
            Some("tv" | "television" | "televisionraw") => Some("hdtv"),
            Some("dvd") => Some("dvd"),
            _ => None,
        };
        Facts {
            name: q
                .name
                .as_deref()
                .map(clean)
                .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("unknown"))
                .map(str::to_string),
            source,
            resolution: q
                .resolution
                .filter(|r| [480, 576, 720, 1080, 2160].contains(r)),
        }
    }
}

/// `tt0133093` as the *arr says it; anything else is no IMDb id.
fn imdb(id: Option<&str>) -> Option<String> {
    let id = id?.trim();
    let digits = id.strip_prefix("tt")?;
    (!digits.is_empty() && digits.len() <= 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id.to_string())
}

fn nonempty(s: Option<&str>) -> Option<String> {
    s.map(clean).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Text without control characters at either end (and none inside: a
/// title with one is cut there).
fn clean(s: &str) -> &str {
    let s = s.trim();
    match s.find(char::is_control) {
        Some(i) => s[..i].trim_end(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movies(json: serde_json::Value) -> Vec<Movie> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn movies_with_a_file_become_entries_with_radarr_ids() {
        let list = movies(serde_json::json!([
            {"id": 1, "title": "The Matrix", "year": 1999, "tmdbId": 603, "imdbId": "tt0133093",
             "path": "/movies/The Matrix (1999)", "hasFile": true, "images": [{"x": 1}],
             "movieFile": {"id": 41, "path": "/movies/The Matrix (1999)/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv",
                           "relativePath": "The.Matrix.1999.1080p.BluRay.x264-GRP.mkv",
                           "sceneName": "The.Matrix.1999.1080p.BluRay.x264-GRP", "releaseGroup": "GRP",
                           "quality": {"quality": {"id": 7, "name": "Bluray-1080p", "source": "bluray", "resolution": 1080, "modifier": "none"},
                                       "revision": {"version": 1}}}},
            {"id": 2, "title": "Wanted", "year": 2020, "tmdbId": 5, "hasFile": false},
            {"id": 3, "title": "Alien: Romulus", "year": 2024, "tmdbId": 945961, "imdbId": "",
             "path": "/movies/Alien Romulus (2024)",
             "movieFile": {"id": 42, "relativePath": "Alien Romulus (2024).mkv",
                           "quality": {"quality": {"name": "Remux-2160p", "source": "bluray", "resolution": 2160, "modifier": "remux"}}}},
            {"id": 4, "title": "Relative", "tmdbId": 0, "movieFile": {"id": 43, "path": "relative/x.mkv"}}
        ]));
        let entries = movie_entries(&list);
        assert_eq!(entries.len(), 2, "{entries:?}");
        let m = &entries[0];
        assert_eq!(m.file_id, 41);
        assert_eq!(m.title, "The.Matrix.1999.1080p.BluRay.x264-GRP");
        assert_eq!(
            m.path,
            Path::new("/movies/The Matrix (1999)/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv")
        );
        let f = &m.facts;
        assert_eq!(
            (f.tmdb_id, f.imdb_id.as_deref(), f.year),
            (Some(603), Some("tt0133093"), Some(1999))
        );
        assert_eq!(
            (f.quality_name.as_deref(), f.source.as_deref(), f.resolution),
            (Some("Bluray-1080p"), Some("bluray"), Some(1080))
        );
        assert_eq!(f.release_group.as_deref(), Some("GRP"));
        assert_eq!((f.season, f.episode, m.episode_last), (None, None, None));
        let a = &entries[1];
        assert_eq!(
            a.path,
            Path::new("/movies/Alien Romulus (2024)/Alien Romulus (2024).mkv"),
            "folder + relativePath when the *arr gives no path"
        );
        assert_eq!(a.title, "Alien: Romulus (2024) Remux-2160p");
        assert_eq!(
            (a.facts.source.as_deref(), a.facts.imdb_id.as_deref()),
            (Some("remux"), None)
        );
    }

    #[test]
    fn episode_files_map_to_season_and_episodes() {
        let series: Series = serde_json::from_value(serde_json::json!({
            "id": 7, "title": "Breaking Bad", "year": 2008, "tvdbId": 81189, "imdbId": "tt0903747",
            "path": "/tv/Breaking Bad", "statistics": {"episodeFileCount": 3}
        }))
        .unwrap();
        let files: Vec<EpisodeFile> = serde_json::from_value(serde_json::json!([
            {"id": 100, "seriesId": 7, "seasonNumber": 1, "relativePath": "Season 01/Breaking Bad - S01E01.mkv",
             "quality": {"quality": {"name": "HDTV-720p", "source": "television", "resolution": 720}}},
            {"id": 101, "seriesId": 7, "seasonNumber": 1, "path": "/tv/Breaking Bad/Season 01/bb.s01e02e03.mkv",
             "sceneName": "", "quality": {"quality": {"name": "WEBDL-1080p", "source": "web", "resolution": 1080}}},
            {"id": 102, "seriesId": 7, "seasonNumber": 2, "path": "/tv/Breaking Bad/Season 02/orphan.mkv"}
        ]))
        .unwrap();
        let episodes: Vec<Episode> = serde_json::from_value(serde_json::json!([
            {"id": 1, "seasonNumber": 1, "episodeNumber": 1, "episodeFileId": 100, "hasFile": true},
            {"id": 3, "seasonNumber": 1, "episodeNumber": 3, "episodeFileId": 101, "hasFile": true},
            {"id": 2, "seasonNumber": 1, "episodeNumber": 2, "episodeFileId": 101, "hasFile": true},
            {"id": 4, "seasonNumber": 1, "episodeNumber": 4, "episodeFileId": 0, "hasFile": false}
        ]))
        .unwrap();
        let entries = episode_entries(&series, &files, &episodes);
        assert_eq!(entries.len(), 2, "a file no episode names is left out");
        let one = &entries[0];
        assert_eq!(
            one.path,
            Path::new("/tv/Breaking Bad/Season 01/Breaking Bad - S01E01.mkv")
        );
        assert_eq!(one.title, "Breaking Bad - S01E01 - HDTV-720p");
        let f = &one.facts;
        assert_eq!(
            (f.season, f.episode, one.episode_last),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(
            (f.tvdb_id, f.source.as_deref()),
            (Some(81189), Some("hdtv"))
        );
        assert_eq!(f.imdb_id.as_deref(), Some("tt0903747"));
        let two = &entries[1];
        assert_eq!(two.title, "Breaking Bad - S01E02E03 - WEBDL-1080p");
        assert_eq!((two.facts.episode, two.episode_last), (Some(2), Some(3)));
        assert_eq!(two.facts.series_title.as_deref(), Some("Breaking Bad"));
        assert_eq!(two.facts.source.as_deref(), Some("webdl"));
    }

    /// A daily series from Sonarr: each file carries its episode's air
    /// day (`airDate` in its release, found by Sonarr's daily search) and
    /// is titled by it; a standard series' files are not, whatever their
    /// episodes' air dates.
    #[test]
    fn a_daily_series_files_carry_their_air_day() {
        let series = |kind: &str| -> Series {
            serde_json::from_value(serde_json::json!({
                "id": 9, "title": "The Daily Show", "tvdbId": 71256, "seriesType": kind,
                "path": "/tv/The Daily Show"
            }))
            .unwrap()
        };
        let files: Vec<EpisodeFile> = serde_json::from_value(serde_json::json!([
            {"id": 200, "seriesId": 9, "seasonNumber": 2011,
             "path": "/tv/The Daily Show/Season 2011/tds.ep.mkv"}
        ]))
        .unwrap();
        let episodes: Vec<Episode> = serde_json::from_value(serde_json::json!([
            {"id": 2, "seasonNumber": 2011, "episodeNumber": 35, "episodeFileId": 200,
             "airDate": "2011-03-16"},
            {"id": 1, "seasonNumber": 2011, "episodeNumber": 34, "episodeFileId": 200,
             "airDate": "2011-03-15"},
            {"id": 3, "seasonNumber": 2011, "episodeNumber": 36, "episodeFileId": 0,
             "airDate": "2011-03-17"}
        ]))
        .unwrap();
        let daily = episode_entries(&series("daily"), &files, &episodes);
        assert_eq!(
            daily[0].facts.air_date,
            crate::naming::AirDate::new(2011, 3, 15)
        );
        assert!(
            daily[0].title.starts_with("The Daily Show - 2011-03-15"),
            "{}",
            daily[0].title
        );
        let standard = episode_entries(&series("standard"), &files, &episodes);
        assert_eq!(standard[0].facts.air_date, None);
        assert!(
            standard[0]
                .title
                .starts_with("The Daily Show - S2011E34E35")
        );
    }

    #[test]
    fn quality_sources_of_both_apps() {
        for (source, modifier, want) in [
            ("bluray", "none", Some("bluray")),
            ("bluray", "remux", Some("remux")),
            ("blurayRaw", "", Some("remux")),
            ("webdl", "", Some("webdl")),
            ("web", "", Some("webdl")),
            ("webRip", "", Some("webrip")),
            ("tv", "", Some("hdtv")),
            ("televisionRaw", "", Some("hdtv")),
            ("dvd", "", Some("dvd")),
            ("cam", "", None),
            ("unknown", "", None),
        ] {
            let model = QualityModel {
                quality: Some(Quality {
                    name: Some("Unknown".into()),
                    source: Some(source.into()),
                    resolution: Some(0),
                    modifier: Some(modifier.into()),
                }),
            };
            let facts = Facts::of(Some(&model));
            assert_eq!(facts.source, want, "{source} {modifier}");
            assert_eq!((facts.name, facts.resolution), (None, None));
        }
    }

    #[test]
    fn text_from_the_arr_is_cleaned() {
        assert_eq!(clean("  Title\n"), "Title");
        assert_eq!(clean("A\u{1b}[31mB"), "A");
        assert_eq!(imdb(Some("tt0133093")), Some("tt0133093".into()));
        assert_eq!(imdb(Some("0133093")), None);
        assert_eq!(imdb(Some("tt")), None);
        let of = Titled {
            path: Some("/m".into()),
            ..Titled::default()
        };
        let file = MediaFile {
            relative_path: Some("../x.mkv".into()),
            ..MediaFile::default()
        };
        assert_eq!(
            entry(&of, &file, "t".into()).map(|e| e.path),
            Some(PathBuf::from("/m/../x.mkv")),
            "kept as said: the catalogue resolves it and checks the root folders"
        );
    }
}
