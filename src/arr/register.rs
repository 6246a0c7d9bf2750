//! `jack arr register`: add this node to every `[[arr]]` as a Torznab
//! indexer and, when `[qbittorrent]` is configured, as a qBittorrent
//! download client, both named `jack`.
//!
//! New entries start from the *arr's own template (`GET
//! /api/v3/{indexer,downloadclient}/schema`), so every field jack does not
//! set keeps the default of that *arr's version; jack sets only the fields
//! it owns ([`Wanted`]). Running it again changes nothing: the entry named
//! `jack` is compared field by field and written (`PUT`) only when one of
//! jack's fields differs. Radarr v5 and Sonarr v4 answer `********` for
//! keys and passwords; such a field cannot be compared and counts as equal.
//! Entries are saved with `forceSave=true`: the *arr does not test them
//! first, so registering works before the node runs (the *arr's own Test
//! button checks the connection).

use std::io::Write;

use serde_json::{Value, json};

use crate::arr::client::{ArrClient, ArrError};
use crate::config::{ArrKind, Config, QbitConfig};
use crate::error::{Error, Result};

/// The name of jack's entries in the *arr.
pub const NAME: &str = "jack";
/// What Radarr v5 and Sonarr v4 show instead of a key or password.
pub const MASK: &str = "********";
/// The longest one request may take.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// One value jack sets on an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: &'static str,
    pub value: Value,
    /// Missing from the *arr's template: an error when required, else the
    /// *arr's version does not have it and it is left out.
    pub required: bool,
}

fn set(key: &'static str, value: Value) -> Setting {
    Setting {
        key,
        value,
        required: true,
    }
}

fn set_if_known(key: &'static str, value: Value) -> Setting {
    Setting {
        key,
        value,
        required: false,
    }
}

/// What jack wants one entry to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The API resource: `indexer` or `downloadclient`.
    pub resource: &'static str,
    /// For people: `indexer`, `download client`.
    pub label: &'static str,
    /// `Torznab` or `QBittorrent`.
    pub implementation: &'static str,
    /// Top-level keys of the resource.
    pub top: Vec<Setting>,
    /// Entries of its `fields` list, by `name`.
    pub fields: Vec<Setting>,
    /// Log in with this key (`Authorization: Bearer`) instead of the
    /// username and password, where the *arr's entry has an `apiKey`
    /// field (Sonarr since 2026, for qBittorrent 5.2's API keys).
    pub key_login: Option<String>,
}

impl Wanted {
    /// What jack wants of `entry` (an existing entry or a template): with
    /// a key login and an `apiKey` field there, the key, and the username
    /// and password emptied (the *arr refuses both ways at once).
    pub fn for_entry(&self, entry: &Value) -> Wanted {
        let mut wanted = self.clone();
        let takes_key = entry["fields"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| f["name"] == "apiKey"));
        if let (Some(key), true) = (&self.key_login, takes_key) {
            for s in &mut wanted.fields {
                if matches!(s.key, "username" | "password") {
                    s.value = json!("");
                }
            }
            wanted.fields.push(set("apiKey", json!(key)));
        }
        wanted
    }
}

/// What registering did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Added,
    Updated,
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Added => "added",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// The Torznab indexer: jack's `/torznab/api` with the node's key, movie
/// categories for Radarr and TV for Sonarr, tied to jack's download client
/// when there is one (and the *arr's version can). Pure.
pub fn indexer(kind: ArrKind, public_url: &str, api_key: &str, client_id: Option<i64>) -> Wanted {
    let categories = match kind {
        ArrKind::Radarr => json!([2000]),
        ArrKind::Sonarr => json!([5000]),
    };
    let mut top = vec![
        set("enableRss", json!(true)),
        set("enableAutomaticSearch", json!(true)),
        set("enableInteractiveSearch", json!(true)),
    ];
    if let Some(id) = client_id {
        top.push(set_if_known("downloadClientId", json!(id)));
    }
    Wanted {
        resource: "indexer",
        label: "indexer",
        implementation: "Torznab",
        top,
        fields: vec![
            set("baseUrl", json!(format!("{public_url}/torznab"))),
            set("apiPath", json!("/api")),
            set("apiKey", json!(api_key)),
            set("categories", categories),
        ],
        key_login: None,
    }
}

/// The qBittorrent download client: jack's `/api/v2` at `public_url`, the
/// `[qbittorrent]` login (or, where the *arr can, the node's owner key
/// `api_key`: one secret), category `jack`, and "Remove Completed" as
/// `[qbittorrent] remove_after_import` says (jack reports share limits
/// that let the *arr remove a download once imported). Pure.
pub fn download_client(
    kind: ArrKind,
    public_url: &str,
    qbit: &QbitConfig,
    api_key: &str,
) -> std::result::Result<Wanted, String> {
    let at = Endpoint::parse(public_url)?;
    let category = match kind {
        ArrKind::Radarr => "movieCategory",
        ArrKind::Sonarr => "tvCategory",
    };
    let mut fields = vec![
        set("host", json!(at.host)),
        set("port", json!(at.port)),
        set("useSsl", json!(at.tls)),
        set("username", json!(qbit.username)),
        set("password", json!(qbit.password.expose())),
        set(category, json!(NAME)),
    ];
    if !at.path.is_empty() {
        fields.push(set_if_known("urlBase", json!(at.path)));
    }
    Ok(Wanted {
        resource: "downloadclient",
        label: "download client",
        implementation: "QBittorrent",
        top: vec![
            set("enable", json!(true)),
            set_if_known("removeCompletedDownloads", json!(qbit.remove_after_import)),
        ],
        fields,
        key_login: Some(api_key.to_string()),
    })
}

/// Host, port, TLS and path of `server.public_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Without a trailing `/`; empty at the root.
    pub path: String,
}

impl Endpoint {
    /// `http://192.168.1.20:5225/jack` → no TLS, host, 5225, `/jack`. Pure.
    pub fn parse(url: &str) -> std::result::Result<Endpoint, String> {
        let bad = || format!("server.public_url {url:?} has no host and port jack can read");
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad());
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad)?;
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
                }
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if tls => 443,
            None => 80,
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// Sets jack's values on `resource` (an existing entry or a template).
/// Errors name a required field the resource lacks. Pure.
pub fn apply(resource: &mut Value, wanted: &Wanted) -> std::result::Result<(), String> {
    let Some(obj) = resource.as_object_mut() else {
        return Err(format!("the {} is not a JSON object", wanted.label));
    };
    obj.insert("name".into(), json!(NAME));
    for s in &wanted.top {
        if s.required || obj.contains_key(s.key) {
            obj.insert(s.key.into(), s.value.clone());
        }
    }
    let fields = obj
        .get_mut("fields")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("the {} has no fields", wanted.label))?;
    for s in &wanted.fields {
        match fields.iter_mut().find(|f| f["name"] == s.key) {
            Some(f) => f["value"] = s.value.clone(),
            None if s.required => {
                return Err(format!(
                    "the {} {} has no field {:?}: is this Radarr/Sonarr v3 or later?",
                    wanted.implementation, wanted.label, s.key
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// True when every value jack owns is already on `existing`; a key or
/// password the *arr shows as [`MASK`] counts as equal. Pure.
pub fn unchanged(existing: &Value, wanted: &Wanted) -> bool {
    let same = |have: Option<&Value>, want: &Value, required: bool| match have {
        None => !required,
        Some(Value::String(m)) if m == MASK => want.is_string(),
        Some(v) => v == want,
    };
    let fields = existing["fields"].as_array();
    existing["name"] == NAME
        && wanted
            .top
            .iter()
            .all(|s| same(existing.get(s.key), &s.value, s.required))
        && wanted.fields.iter().all(|s| {
            let field = fields.and_then(|fs| fs.iter().find(|f| f["name"] == s.key));
            same(field.and_then(|f| f.get("value")), &s.value, s.required)
        })
}

/// Makes the entry named `jack` what `wanted` says. Returns what was done
/// and the entry's id.
pub fn ensure(
    client: &ArrClient,
    wanted: &Wanted,
) -> std::result::Result<(Outcome, Option<i64>), ArrError> {
    let res = wanted.resource;
    let existing: Vec<Value> = client.get(&format!("/api/v3/{res}"))?;
    let refused = |m: String| ArrError::Refused(format!("{}: {m}", client.who()));
    if let Some(mut entry) = existing.into_iter().find(|e| e["name"] == NAME) {
        let id = entry["id"].as_i64();
        if entry["implementation"] != wanted.implementation {
            return Err(refused(format!(
                "its {} named {NAME:?} is {}, not {}: rename or remove it",
                wanted.label, entry["implementation"], wanted.implementation
            )));
        }
        let wanted = &wanted.for_entry(&entry);
        if unchanged(&entry, wanted) {
            return Ok((Outcome::Unchanged, id));
        }
        let Some(id) = id else {
            return Err(refused(format!("its {} {NAME:?} has no id", wanted.label)));
        };
        apply(&mut entry, wanted).map_err(refused)?;
        client.put(&format!("/api/v3/{res}/{id}?forceSave=true"), &entry)?;
        return Ok((Outcome::Updated, Some(id)));
    }
    let templates: Vec<Value> = client.get(&format!("/api/v3/{res}/schema"))?;
    let mut entry = templates
        .into_iter()
        .find(|t| t["implementation"] == wanted.implementation)
        .ok_or_else(|| {
            refused(format!(
                "it offers no {} {}",
                wanted.implementation, wanted.label
            ))
        })?;
    if let Some(obj) = entry.as_object_mut() {
        obj.remove("presets");
        obj.remove("id");
    }
    let wanted = &wanted.for_entry(&entry);
    apply(&mut entry, wanted).map_err(refused)?;
    let created = client.post(&format!("/api/v3/{res}?forceSave=true"), &entry)?;
    Ok((Outcome::Added, created["id"].as_i64()))
}

/// Registers with every `[[arr]]`, printing each step to `out`. Fails
/// (exit 1) when any *arr could not be brought up to date; the others are
/// still done.
pub fn run(config: &Config, out: &mut dyn Write) -> Result<()> {
    if config.arrs.is_empty() {
        return Err(Error::Usage(format!(
            "no [[arr]] in {}: add your Radarr/Sonarr there (see jack.toml) to register with them",
            config.file.display()
        )));
    }
    let mut failed = Vec::new();
    for arr in &config.arrs {
        let client = ArrClient::new(arr, DEADLINE);
        say(out, &format!("{}\n", client.who()))?;
        if let Err(e) = register_one(&client, config, out)? {
            say(out, &format!("failed\n    {e}\n"))?;
            failed.push(arr.name.as_str());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Runtime(format!(
            "could not register with {} of {} *arr: {}",
            failed.len(),
            config.arrs.len(),
            failed.join(", ")
        )))
    }
}

/// The steps for one *arr. The outer error is the terminal's; the inner
/// one the *arr's (already half-printed: the step's label is out).
fn register_one(
    client: &ArrClient,
    config: &Config,
    out: &mut dyn Write,
) -> Result<std::result::Result<(), ArrError>> {
    let kind = client.arr().kind;
    let public_url = &config.server.public_url;
    if unreachable_from(public_url, &client.arr().url) {
        say(
            out,
            &format!(
                "  note: server.public_url {public_url} is this machine only; set it to an address this *arr reaches\n"
            ),
        )?;
    }
    let mut client_id = None;
    match &config.qbittorrent {
        Some(q) => {
            say(
                out,
                &format!("  download client {NAME:?} (qBittorrent API at {public_url}): "),
            )?;
            let key = config.server.api_key.expose();
            let wanted = match download_client(kind, public_url, q, key) {
                Ok(w) => w,
                Err(m) => return Ok(Err(ArrError::Refused(m))),
            };
            match ensure(client, &wanted) {
                Ok((outcome, id)) => {
                    say(out, &format!("{outcome}\n"))?;
                    client_id = id;
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        None => say(
            out,
            "  download client: skipped (no [qbittorrent] in jack.toml; grabs reach jack through its watch folder)\n",
        )?,
    }
    say(
        out,
        &format!("  indexer {NAME:?} (Torznab at {public_url}/torznab/api): "),
    )?;
    let key = config.server.api_key.expose();
    match ensure(client, &indexer(kind, public_url, key, client_id)) {
        Ok((outcome, _)) => say(out, &format!("{outcome}\n"))?,
        Err(e) => return Ok(Err(e)),
    }
    Ok(Ok(()))
}

/// True when `public_url` is a loopback address and the *arr at `arr_url`
/// is not: the *arr, elsewhere, cannot reach jack there. Pure.
pub fn unreachable_from(public_url: &str, arr_url: &str) -> bool {
    let loopback = |url: &str| {
        Endpoint::parse(url).is_ok_and(|e| {
            e.host == "localhost"
                || e.host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
    };
    loopback(public_url) && !loopback(arr_url)
}

/// Writes and flushes, so each step shows before its request is made.
fn say(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SecretOrigin};

    fn qbit() -> QbitConfig {
        QbitConfig {
            username: "admin".into(),
            password: Secret::new("pw", SecretOrigin::Inline),
            remove_after_import: true,
        }
    }

    fn template() -> Value {
        json!({
            "id": 0, "name": "", "implementation": "Torznab", "configContract": "TorznabSettings",
            "enableRss": true, "enableAutomaticSearch": true, "enableInteractiveSearch": true,
            "priority": 25, "downloadClientId": 0, "protocol": "torrent", "tags": [],
            "fields": [
                {"name": "baseUrl", "value": null}, {"name": "apiPath", "value": "/api"},
                {"name": "apiKey", "value": null}, {"name": "categories", "value": [2000, 2010]},
                {"name": "minimumSeeders", "value": 1}
            ]
        })
    }

    #[test]
    fn public_urls_give_host_port_tls_and_path() {
        let e = |u: &str| Endpoint::parse(u).map(|e| (e.tls, e.host, e.port, e.path));
        assert_eq!(
            e("http://127.0.0.1:5225"),
            Ok((false, "127.0.0.1".into(), 5225, "".into()))
        );
        assert_eq!(
            e("https://jack.example.org/jack/"),
            Ok((true, "jack.example.org".into(), 443, "/jack".into()))
        );
        assert_eq!(e("http://nas"), Ok((false, "nas".into(), 80, "".into())));
        assert_eq!(
            e("http://[::1]:5225/x"),
            Ok((false, "::1".into(), 5225, "/x".into()))
        );
        assert!(e("http://:5225").is_err());
        assert!(e("http://host:99999").is_err());
        assert!(e("ftp://host").is_err());
    }

    #[test]
    fn a_loopback_public_url_is_noted_for_an_arr_elsewhere() {
        let local = "http://127.0.0.1:5225";
        assert!(unreachable_from(local, "http://radarr:7878"));
        assert!(unreachable_from(
            "http://localhost:5225",
            "http://10.0.0.3:7878"
        ));
        assert!(!unreachable_from(local, "http://127.0.0.1:7878"));
        assert!(!unreachable_from(local, "http://[::1]:7878"));
        assert!(!unreachable_from(
            "http://10.0.0.2:5225",
            "http://radarr:7878"
        ));
    }

    #[test]
    fn a_template_gets_jacks_values_and_keeps_the_rest() {
        let wanted = indexer(ArrKind::Radarr, "http://10.0.0.2:5225", "k", Some(3));
        let mut t = template();
        apply(&mut t, &wanted).unwrap();
        assert_eq!(t["name"], "jack");
        assert_eq!(t["downloadClientId"], 3);
        assert_eq!(t["priority"], 25, "not jack's: kept");
        let field = |n: &str| {
            t["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == n)
                .unwrap()["value"]
                .clone()
        };
        assert_eq!(field("baseUrl"), "http://10.0.0.2:5225/torznab");
        assert_eq!(field("apiPath"), "/api");
        assert_eq!(field("apiKey"), "k");
        assert_eq!(field("categories"), json!([2000]));
        assert_eq!(field("minimumSeeders"), 1);
        assert!(unchanged(&t, &wanted));

        let mut old = template();
        old.as_object_mut().unwrap().remove("downloadClientId");
        apply(&mut old, &wanted).unwrap();
        assert!(
            old.get("downloadClientId").is_none(),
            "an older *arr without the key"
        );
        assert!(unchanged(&old, &wanted));

        let mut bare = json!({"fields": [{"name": "baseUrl"}]});
        let err = apply(&mut bare, &wanted).unwrap_err();
        assert!(err.contains("apiPath"), "{err}");
    }

    #[test]
    fn masked_secrets_count_as_equal_and_anything_else_differs() {
        let wanted =
            download_client(ArrKind::Sonarr, "http://127.0.0.1:5225", &qbit(), "owner").unwrap();
        let mut entry = json!({
            "id": 4, "name": "jack", "implementation": "QBittorrent", "enable": true,
            "fields": [
                {"name": "host", "value": "127.0.0.1"}, {"name": "port", "value": 5225},
                {"name": "useSsl", "value": false}, {"name": "username", "value": "admin"},
                {"name": "password", "value": "********"}, {"name": "tvCategory", "value": "jack"},
                {"name": "urlBase", "value": null}
            ]
        });
        assert!(unchanged(&entry, &wanted));
        entry["fields"][1]["value"] = json!(8080);
        assert!(!unchanged(&entry, &wanted));
        entry["fields"][1]["value"] = json!(5225);
        entry["enable"] = json!(false);
        assert!(!unchanged(&entry, &wanted));
        entry["enable"] = json!(true);
        entry["fields"][4]["value"] = json!("old");
        assert!(
            !unchanged(&entry, &wanted),
            "a password shown in clear is compared"
        );
        let radarr = download_client(ArrKind::Radarr, "https://h/x", &qbit(), "owner").unwrap();
        let names: Vec<&str> = radarr.fields.iter().map(|s| s.key).collect();
        assert_eq!(
            names,
            [
                "host",
                "port",
                "useSsl",
                "username",
                "password",
                "movieCategory",
                "urlBase"
            ]
        );
    }

    #[test]
    fn the_owner_key_logs_in_where_the_arr_takes_one() {
        let wanted = download_client(ArrKind::Sonarr, "http://h:5225", &qbit(), "owner").unwrap();
        let value = |w: &Wanted, key: &str| {
            w.fields
                .iter()
                .find(|s| s.key == key)
                .map(|s| s.value.clone())
        };
        // An *arr without an `apiKey` field: username and password.
        let old = json!({"fields": [{"name": "username"}, {"name": "password"}]});
        let w = wanted.for_entry(&old);
        assert_eq!(value(&w, "username"), Some(json!("admin")));
        assert_eq!(value(&w, "apiKey"), None);
        // With one: the key, and no username or password.
        let new = json!({"fields": [{"name": "username"}, {"name": "apiKey"}]});
        let w = wanted.for_entry(&new);
        assert_eq!(value(&w, "apiKey"), Some(json!("owner")));
        assert_eq!(value(&w, "username"), Some(json!("")));
        assert_eq!(value(&w, "password"), Some(json!("")));
        // "Remove Completed" follows `remove_after_import`, where known.
        let remove = wanted
            .top
            .iter()
            .find(|s| s.key == "removeCompletedDownloads");
        assert_eq!(
            remove.map(|s| (&s.value, s.required)),
            Some((&json!(true), false))
        );
        let mut keep = qbit();
        keep.remove_after_import = false;
        let w = download_client(ArrKind::Radarr, "http://h:5225", &keep, "owner").unwrap();
        let remove = w.top.iter().find(|s| s.key == "removeCompletedDownloads");
        assert_eq!(remove.map(|s| &s.value), Some(&json!(false)));
    }
}
