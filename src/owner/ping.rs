//! `jack ping [--url URL]`: is the node answering? `GET /ping` on the
//! configured `server.listen` (loopback for an unspecified address), or on
//! `--url`, within [`PING_TIMEOUT`]; one plain line, exit 0 when it answers
//! `200 {"status":"OK"}`, 1 otherwise. The container image's `HEALTHCHECK`
//! (no shell, no curl in the image). Must not print a key: `/ping` takes none.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::owner::status::{api_addr, daemon_agent};

/// The whole exchange, connection included, must end within this.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where `jack ping` asks: `--url` as given (`/ping` appended unless it ends
/// with it), else `http://<listen>/ping`. A `--url` that is not http(s) is
/// a usage error.
pub fn target(
    url: Option<&str>,
    path: &std::path::Path,
    config: impl FnOnce() -> Result<Config>,
) -> Result<String> {
    match url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            let base = u.trim_end_matches('/');
            Ok(match base.ends_with("/ping") {
                true => base.to_string(),
                false => format!("{base}/ping"),
            })
        }
        Some(u) => Err(Error::Usage(format!(
            "ping: --url {u:?} must start with http:// or https:// (for example http://127.0.0.1:5225)"
        ))),
        None if !path.exists() => Err(Error::Runtime(format!(
            "cannot check the node: there is no configuration at {} (yet: jack run --init writes one)",
            path.display()
        ))),
        None => {
            let config = config().map_err(|e| {
                let text = e.to_string();
                let why = text.lines().map(str::trim).collect::<Vec<_>>();
                Error::Runtime(format!("cannot check the node: {}", why.join("; ")))
            })?;
            Ok(format!("http://{}/ping", api_addr(config.server.listen)))
        }
    }
}

/// Asks `url` once; `Ok` with the line to print when the node is healthy.
pub fn ping(url: &str) -> Result<String> {
    let started = Instant::now();
    let down = |why: String| Error::Runtime(format!("the node is not answering at {url} ({why})"));
    let mut resp = daemon_agent()
        .get(url)
        .config()
        .timeout_global(Some(PING_TIMEOUT))
        .build()
        .call()
        .map_err(|e| down(plain(&e)))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    if status != 200 || !body.contains("\"OK\"") {
        return Err(Error::Runtime(format!(
            "the node at {url} is not healthy: it answered {status} {}",
            body.trim().chars().take(120).collect::<String>()
        )));
    }
    Ok(format!(
        "ok: the node answers at {url} ({} ms)",
        started.elapsed().as_millis()
    ))
}

/// `jack ping`: prints the healthy line on `out`; an unhealthy node is an
/// error (exit 1, its line on stderr through `main`).
pub fn run(url: &str, out: &mut dyn Write) -> Result<()> {
    let line = ping(url)?;
    writeln!(out, "{line}").map_err(|e| Error::io("cannot write to stdout", e))
}

/// Why a request got no answer, in words (no OS error numbers).
fn plain(err: &ureq::Error) -> String {
    use std::io::ErrorKind as K;
    match err {
        ureq::Error::Timeout(_) => format!("no answer within {} s", PING_TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Io(e) => match e.kind() {
            K::ConnectionRefused => "connection refused: is jack running?".into(),
            K::TimedOut | K::WouldBlock => {
                format!("no answer within {} s", PING_TIMEOUT.as_secs())
            }
            K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof => {
                "the connection was closed without an answer".into()
            }
            kind => kind.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn url_forms() {
        let no_config = || -> Result<Config> { unreachable!("--url needs no config") };
        for (given, asked) in [
            ("http://127.0.0.1:5225", "http://127.0.0.1:5225/ping"),
            ("http://127.0.0.1:5225/", "http://127.0.0.1:5225/ping"),
            ("http://nas:5225/ping", "http://nas:5225/ping"),
            (
                "https://jack.example/base",
                "https://jack.example/base/ping",
            ),
        ] {
            assert_eq!(
                target(Some(given), Path::new("/x"), no_config).unwrap(),
                asked
            );
        }
        let err = target(Some("127.0.0.1:5225"), Path::new("/x"), no_config).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("must start with http://"), "{err}");
    }

    #[test]
    fn the_listen_address_with_loopback_for_an_unspecified_one() {
        let env = |_: &str| None;
        let config = |listen: &str| {
            let text = format!("[server]\nlisten = \"{listen}\"\napi_key = \"k\"\n");
            move || {
                Config::parse(&text, std::path::Path::new("/x/jack.toml"), &env)
                    .map_err(Error::Config)
            }
        };
        assert_eq!(
            target(None, Path::new("/"), config("0.0.0.0:5225")).unwrap(),
            "http://127.0.0.1:5225/ping"
        );
        assert_eq!(
            target(None, Path::new("/"), config("[::]:80")).unwrap(),
            "http://[::1]:80/ping"
        );
        assert_eq!(
            target(None, Path::new("/"), config("192.168.1.5:5225")).unwrap(),
            "http://192.168.1.5:5225/ping"
        );
        // A configuration that is missing or wrong is an unhealthy answer
        // (1), on one line, without OS error text.
        let missing = Path::new("/nonexistent/jack.toml");
        let err = target(None, missing, || Config::load(missing, &env)).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string()
                .contains("no configuration at /nonexistent/jack.toml"),
            "{err}"
        );
        let err = target(None, Path::new("/"), || {
            Config::parse("[server]\nlisten = 5\n", Path::new("/c/jack.toml"), &env)
                .map_err(Error::Config)
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot check the node: invalid configuration /c/jack.toml"),
            "{err}"
        );
    }
}
