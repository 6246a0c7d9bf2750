//! `jack pause ID` and `jack resume ID` (and `jack retry ID`, resume's
//! older name): through the running daemon's status API, which owns the
//! workers, or else on the registry itself: a pause only with no daemon
//! running (its instance lock free, and held here meanwhile), a resume
//! also beside a daemon that did not answer (it picks queued rows up).
//! `jack retry-stub FILE`: a stub the watch folder set aside put back
//! (`download/aside`), on the folder and registry themselves: the running
//! node's watch thread reads it again, or the next start does.

use std::io::Write;

use crate::config::Config;
use crate::db::{RESUMED, Registry};
use crate::error::{Error, Result};
use crate::instance::InstanceLock;
use crate::owner::status::{api_addr, daemon_agent};

/// What to do to one download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

/// Runs `action` on download `id` and says what became of it.
pub fn run(config: &Config, action: Action, id: i64, out: &mut dyn Write) -> Result<()> {
    let addr = api_addr(config.server.listen);
    let key = config.server.api_key.expose();
    let verb = action.verb();
    let url = format!("http://{addr}/api/v1/downloads/{id}/{verb}");
    let why = match daemon_agent()
        .post(&url)
        .header("X-Api-Key", key)
        .send_empty()
    {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
            return match (status, message) {
                (200, _) => say(
                    out,
                    &format!("download {id}: {verb}d (by the node at {addr})"),
                ),
                (_, Some(message)) => Err(Error::Runtime(message)),
                (_, None) => Err(Error::Runtime(format!(
                    "the node at {addr} answered {status} to {verb}"
                ))),
            };
        }
        Err(e) => format!("the node is not answering at {addr}: {e}"),
    };
    // No daemon answers: act on the registry. A resume is safe beside a
    // running node (a paused or failed row is no worker's; the node picks
    // queued rows up); a pause is not (a worker may hold the row), so it
    // holds the instance lock, and fails when a node runs unreachable.
    let path = &config.database.path;
    if !path.exists() {
        return Err(Error::Runtime(format!("no download with id {id} ({why})")));
    }
    let lock = match (InstanceLock::acquire(path), action) {
        (Ok(lock), _) => Some(lock),
        (Err(Error::AlreadyRunning { .. }), Action::Resume) => None,
        (Err(Error::AlreadyRunning { holder, .. }), Action::Pause) => {
            return Err(Error::Runtime(format!(
                "the node runs ({holder}) but {why}; try again when it answers"
            )));
        }
        (Err(e), _) => return Err(e),
    };
    let registry = Registry::open(path)?;
    let was = match action {
        Action::Pause => registry.pause(id)?,
        Action::Resume => registry.retry(id, RESUMED)?,
    };
    let done = match (action, was) {
        (Action::Pause, s) if !s.is_live() => {
            return Err(Error::Runtime(format!(
                "download {id} is {s}, not queued or running"
            )));
        }
        (Action::Pause, _) => format!("download {id} was {was}; paused"),
        (Action::Resume, _) => format!("download {id} was {was}; queued again"),
    };
    let whose = match lock {
        Some(_) => "the node is not running",
        None => "the running node picks it up",
    };
    say(out, &format!("{done} (in the registry: {whose})"))
}

fn say(out: &mut dyn Write, line: &str) -> Result<()> {
    writeln!(out, "{line}").map_err(|e| Error::io("cannot write to stdout", e))
}

/// `jack retry-stub FILE`: puts the stub set aside as `FILE` back.
pub fn retry_stub(config: &Config, file: &str, out: &mut dyn Write) -> Result<()> {
    use crate::download::aside::{Refused, retry};
    let path = &config.database.path;
    if !path.exists() {
        return Err(Error::Runtime(format!(
            "no registry at {}: nothing was set aside yet",
            path.display()
        )));
    }
    let registry = Registry::open(path)?;
    let dir = &config.downloads.watch_dir;
    match retry(dir, &registry, file)? {
        Ok(stub) => say(
            out,
            &format!("{file}: put back as {stub}; the watch folder reads it again"),
        ),
        Err(Refused::NotFound) => Err(Error::Runtime(format!(
            "no stub set aside as {file} in {} (see `jack status`)",
            dir.display()
        ))),
        Err(Refused::Conflict(why)) => Err(Error::Runtime(why)),
    }
}
