//! The Radarr/Sonarr v3 API client: JSON over plain HTTP with the
//! operator's *arr.
//!
//! One `ureq` agent per *arr, with a connect timeout and a deadline for the
//! whole exchange (an *arr that stalls costs at most that), no redirects
//! followed (the key must not travel to another host), statuses read as
//! answers rather than errors, and bodies read up to a limit, straight into
//! the caller's types (a library of 20,000 movies is never held as text).
//! The key goes in `X-Api-Key` only: never in a URL, never in a message.

use std::time::Duration;

use serde::de::DeserializeOwned;
use ureq::Agent;
use ureq::http::Response;

use crate::config::Arr;

/// Largest list body read (`/api/v3/movie` of a large library is tens of MiB).
const MAX_LIST: u64 = 512 * 1024 * 1024;
/// Largest body of any other answer (a command, a registered resource).
const MAX_ANSWER: u64 = 4 * 1024 * 1024;
/// Connecting takes at most this, whatever the exchange's deadline.
const CONNECT: Duration = Duration::from_secs(5);

/// A failed exchange with a Radarr/Sonarr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrError {
    /// Worth asking again later: not reachable, too slow, 5xx or 429.
    Unavailable(String),
    /// Will not get better by asking again: any other 4xx, or a body that is
    /// not what the v3 API sends.
    Refused(String),
}

impl ArrError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ArrError::Unavailable(_))
    }
}

impl std::fmt::Display for ArrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArrError::Unavailable(m) | ArrError::Refused(m) => f.write_str(m),
        }
    }
}

/// A client of one Radarr or Sonarr (`[[arr]]` or an *arr library).
#[derive(Debug, Clone)]
pub struct ArrClient {
    arr: Arr,
    agent: Agent,
}

impl ArrClient {
    /// Every exchange (connect, send, answer, body) ends within `deadline`.
    pub fn new(arr: &Arr, deadline: Duration) -> ArrClient {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .accept_encoding("identity")
            .user_agent(concat!("jack/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(CONNECT.min(deadline)))
            .timeout_global(Some(deadline))
            .build();
        let agent = crate::download::direct::agent(config);
        ArrClient {
            arr: arr.clone(),
            agent,
        }
    }

    pub fn arr(&self) -> &Arr {
        &self.arr
    }

    /// `GET <url><path>` (path and query, e.g. `/api/v3/episode?seriesId=3`),
    /// its JSON body read into `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ArrError> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.arr.url))
            .header("X-Api-Key", self.arr.api_key.expose())
            .header("Accept", "application/json")
            .call();
        self.answer("GET", path, resp)
    }

    /// `POST` a JSON body; the answer's JSON body (`Null` when empty).
    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ArrError> {
        let req = self.agent.post(format!("{}{path}", self.arr.url));
        let resp = self.with_key(req).send(body.to_string());
        self.answer_value("POST", path, resp)
    }

    /// `PUT` a JSON body; the answer's JSON body (`Null` when empty).
    pub fn put(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, ArrError> {
        let req = self.agent.put(format!("{}{path}", self.arr.url));
        let resp = self.with_key(req).send(body.to_string());
        self.answer_value("PUT", path, resp)
    }

    fn with_key(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        req.header("X-Api-Key", self.arr.api_key.expose())
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
    }

    /// `radarr "films" at http://...`: who a message is about.
    pub fn who(&self) -> String {
        format!(
            "{} {:?} at {}",
            self.arr.kind.as_str(),
            self.arr.name,
            self.arr.url
        )
    }

    fn answer<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        resp: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ArrError> {
        let mut resp = self.check(method, path, resp)?;
        let reader = resp.body_mut().with_config().limit(MAX_LIST).reader();
        serde_json::from_reader(reader).map_err(|e| self.unreadable(method, path, e))
    }

    fn answer_value(
        &self,
        method: &str,
        path: &str,
        resp: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<serde_json::Value, ArrError> {
        let mut resp = self.check(method, path, resp)?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| {
                ArrError::Unavailable(format!(
                    "cannot read the answer of {} to {method} {}: {e}",
                    self.who(),
                    short(path)
                ))
            })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| self.unreadable(method, path, e))
    }

    /// The answer when its status is a success; the error it means otherwise.
    fn check(
        &self,
        method: &str,
        path: &str,
        resp: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response<ureq::Body>, ArrError> {
        let what = short(path);
        let resp = resp.map_err(|e| {
            ArrError::Unavailable(format!("cannot reach {}: {method} {what}: {e}", self.who()))
        })?;
        let status = resp.status().as_u16();
        let failed =
            |hint: &str| format!("{} answered {status} to {method} {what}{hint}", self.who());
        match status {
            200..=299 => Ok(resp),
            429 | 500..=599 => Err(ArrError::Unavailable(failed(""))),
            401 | 403 => Err(ArrError::Refused(failed(" (check its api_key)"))),
            _ => Err(ArrError::Refused(failed(""))),
        }
    }

    fn unreadable(&self, method: &str, path: &str, e: serde_json::Error) -> ArrError {
        let what = short(path);
        if e.is_io() {
            ArrError::Unavailable(format!(
                "cannot read the answer of {} to {method} {what}: {e}",
                self.who()
            ))
        } else {
            ArrError::Refused(format!(
                "{} sent an answer to {method} {what} that is not the v3 API's: {e}",
                self.who()
            ))
        }
    }
}

/// A path without its query, for messages.
fn short(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}
