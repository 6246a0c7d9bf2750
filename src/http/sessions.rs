//! Login sessions of the qBittorrent-compatible API: the `SID` cookie.
//!
//! A session id is 128 random bits from `/dev/urandom`, shown once (in the
//! `Set-Cookie` of a login) and kept only as its SHA-1, so a lookup's
//! timing says nothing about a valid id. A session ends [`TTL`] after its
//! last use (qBittorrent's WebUI session timeout), and at most
//! [`MAX_SESSIONS`] exist: a login beyond that ends the least recently
//! used one. Time comes from a [`Clock`], so expiry is tested exactly.
//! Must not log or keep an id in clear.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::clock::Clock;

/// A session unused this long has ended.
pub const TTL: Duration = Duration::from_secs(3600);

/// Sessions at most (each *arr keeps one; re-logins replace theirs).
pub const MAX_SESSIONS: usize = 32;

type Digest = [u8; 20];

pub struct Sessions {
    /// Digest of each id → when it was last used.
    used: Mutex<HashMap<Digest, Instant>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.used.lock().len())
            .finish()
    }
}

impl Sessions {
    pub fn new(clock: Arc<dyn Clock>) -> Sessions {
        Sessions {
            used: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Opens a session; returns its id (for the cookie).
    pub fn open(&self) -> std::io::Result<String> {
        let id = random_id()?;
        let now = self.clock.now();
        let mut used = self.used.lock();
        used.retain(|_, last| now.saturating_duration_since(*last) < TTL);
        if used.len() >= MAX_SESSIONS
            && let Some(oldest) = used.iter().min_by_key(|(_, t)| **t).map(|(d, _)| *d)
        {
            used.remove(&oldest);
        }
        used.insert(digest(&id), now);
        Ok(id)
    }

    /// Whether `id` names a live session; using it keeps it alive.
    pub fn check(&self, id: &str) -> bool {
        let now = self.clock.now();
        let mut used = self.used.lock();
        let key = digest(id);
        match used.get_mut(&key) {
            Some(last) if now.saturating_duration_since(*last) < TTL => {
                *last = now;
                true
            }
            Some(_) => {
                used.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Ends a session (`auth/logout`).
    pub fn close(&self, id: &str) {
        self.used.lock().remove(&digest(id));
    }
}

/// The `SID` of a `Cookie` header value (`a=1; SID=xyz`).
pub fn sid_in_cookie(cookie: &str) -> Option<&str> {
    cookie_value(cookie, "SID")
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn cookie_value<'c>(cookie: &'c str, name: &str) -> Option<&'c str> {
    cookie
        .split(';')
        .filter_map(|c| crate::lexical::trim_ows(c).split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| crate::lexical::trim_ows(v).trim_matches('"'))
}

fn digest(id: &str) -> Digest {
    sha1_smol::Sha1::from(id.as_bytes()).digest().bytes()
}

/// 16 bytes from the kernel's CSPRNG, as 32 lowercase hex characters.
fn random_id() -> std::io::Result<String> {
    crate::keys::random_hex::<16>()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::Manual;

    fn setup() -> (Arc<Manual>, Sessions) {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        (clock.clone(), Sessions::new(clock))
    }

    #[test]
    fn a_session_ends_an_hour_after_its_last_use() {
        let (clock, sessions) = setup();
        let id = sessions.open().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, sessions.open().unwrap(), "ids are random");
        let advance = |d: Duration| *clock.0.lock() += d;
        advance(TTL - Duration::from_secs(1));
        assert!(sessions.check(&id), "used just in time: kept alive");
        advance(TTL - Duration::from_secs(1));
        assert!(sessions.check(&id));
        advance(TTL);
        assert!(!sessions.check(&id), "an hour unused: ended");
        advance(Duration::ZERO);
        assert!(!sessions.check(&id), "and stays ended");
        assert!(!sessions.check("not-a-session"));
        let other = sessions.open().unwrap();
        sessions.close(&other);
        assert!(!sessions.check(&other), "logged out");
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recently_used_goes() {
        let (clock, sessions) = setup();
        let first = sessions.open().unwrap();
        let mut ids = Vec::new();
        for _ in 1..MAX_SESSIONS {
            *clock.0.lock() += Duration::from_secs(1);
            ids.push(sessions.open().unwrap());
        }
        *clock.0.lock() += Duration::from_secs(1);
        assert!(sessions.check(&first), "used last now");
        *clock.0.lock() += Duration::from_secs(1);
        let newest = sessions.open().unwrap();
        assert_eq!(sessions.used.lock().len(), MAX_SESSIONS);
        assert!(sessions.check(&newest) && sessions.check(&first));
        assert!(!sessions.check(&ids[0]), "the least recently used went");
        assert!(sessions.check(&ids[1]));
    }

    #[test]
    fn cookies() {
        assert_eq!(sid_in_cookie("SID=abc"), Some("abc"));
        assert_eq!(sid_in_cookie("a=1; SID=abc; b=2"), Some("abc"));
        assert_eq!(sid_in_cookie("XSID=abc"), None);
        assert_eq!(sid_in_cookie(""), None);
    }
}
