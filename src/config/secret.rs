//! Keys and passwords in `jack.toml`: [`Secret`] (never printed: `Debug`
//! and `Display` show only where it came from) and its three forms, read
//! by [`Cx::secret`]: inline, `{ env = "VAR" }` (through the `Env`
//! function, never the process environment) and `{ file = "/abs/path" }`
//! (a regular file of at most [`SECRET_FILE_LIMIT`] bytes, opened without
//! blocking). This module must not log or format a secret's value.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::schema::Key;
use super::walk::{Cx, Table};

/// A key or password. Never printed: `Debug` and `Display` show only where it
/// came from.
#[derive(Clone)]
pub struct Secret {
    value: String,
    origin: SecretOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    Inline,
    Env(String),
    File(PathBuf),
}

impl Secret {
    pub fn new(value: impl Into<String>, origin: SecretOrigin) -> Secret {
        Secret {
            value: value.into(),
            origin,
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn origin(&self) -> &SecretOrigin {
        &self.origin
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            SecretOrigin::Inline => f.write_str("\"<redacted>\""),
            SecretOrigin::Env(var) => write!(f, "{{ env = {var:?} }} # <redacted>"),
            SecretOrigin::File(path) => write!(f, "{{ file = {:?} }} # <redacted>", path.display()),
        }
    }
}

/// The keys of a secret's table form: `{ env = ... }` or `{ file = ... }`.
const FORMS: &[Key] = &[
    Key::hand("env", None, "the environment variable holding the secret"),
    Key::hand(
        "file",
        None,
        "an absolute path to a file holding the secret",
    ),
];

/// A secret file holds a key or a password: a few KiB at most.
pub const SECRET_FILE_LIMIT: u64 = 16 * 1024;

/// The text of a `{ file = ... }` secret: a regular file of at most
/// [`SECRET_FILE_LIMIT`] bytes of UTF-8. Opened without blocking (a FIFO
/// with no writer would hold the start-up forever) and read through the
/// limit (`/dev/zero` never ends); anything but a regular file is refused
/// before a byte is read.
fn read_secret_file(path: &Path) -> std::result::Result<String, String> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| std::io::Error::from(e).to_string())?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > SECRET_FILE_LIMIT {
        return Err(format!("larger than {SECRET_FILE_LIMIT} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

impl Cx<'_> {
    /// `"inline"`, `{ env = "VAR" }` or `{ file = "/abs/path" }`.
    pub(super) fn secret(&mut self, t: &mut Table<'_, '_>, k: &'static str) -> Option<Secret> {
        let key = t.key(k);
        let Some(v) = t.get(k) else {
            self.problem(key, None, "required key is missing");
            return None;
        };
        let span = v.span();
        let secret = match v.get_ref() {
            DeValue::String(s) => Secret::new(s.to_string(), SecretOrigin::Inline),
            DeValue::Table(tbl) => {
                let mut inner = Table::new(key.clone(), Some(tbl), FORMS);
                let env = self.string(&mut inner, "env");
                let file = self.string(&mut inner, "file");
                let before = self.problems.len();
                self.finish(inner);
                let unknown_keys = self.problems.len() > before;
                match (env, file) {
                    (Some((var, _)), None) => match (self.env)(&var) {
                        Some(value) => Secret::new(value, SecretOrigin::Env(var)),
                        None => {
                            self.problem(
                                key,
                                Some(span),
                                format!("environment variable {var} is not set"),
                            );
                            return None;
                        }
                    },
                    (None, Some((path, _))) => {
                        let p = PathBuf::from(&path);
                        if !p.is_absolute() {
                            self.problem(
                                key,
                                Some(span),
                                format!("secret file {path:?} must be an absolute path"),
                            );
                            return None;
                        }
                        match read_secret_file(&p) {
                            Ok(text) => Secret::new(
                                text.trim_end_matches(['\n', '\r']).to_string(),
                                SecretOrigin::File(p),
                            ),
                            Err(why) => {
                                self.problem(
                                    key,
                                    Some(span),
                                    format!("cannot read secret file {path}: {why}"),
                                );
                                return None;
                            }
                        }
                    }
                    (None, None) if unknown_keys => return None,
                    _ => {
                        self.problem(
                            key,
                            Some(span),
                            "expected a string, { env = \"VAR\" } or { file = \"/absolute/path\" }",
                        );
                        return None;
                    }
                }
            }
            other => {
                let msg = format!(
                    "expected a string, {{ env = \"VAR\" }} or {{ file = \"/absolute/path\" }}, found {}",
                    other.type_str()
                );
                self.problem(key, Some(span), msg);
                return None;
            }
        };
        if secret.expose().trim().is_empty() {
            self.problem(key, Some(span), "must not be empty");
            return None;
        }
        let v = secret.expose();
        if v.chars().any(char::is_control) || v.trim() != v {
            self.problem(
                key,
                Some(span),
                "must not contain control characters or start or end with a space",
            );
            return None;
        }
        Some(secret)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::testing::*;
    use crate::config::*;

    /// Each bad value and the key, line and message it must produce.
    #[test]
    fn bad_secret_values_are_reported_with_key_and_line() {
        each_is_reported(&[
            (
                "[server]\napi_key = \"\"\n",
                "server.api_key",
                Some(2),
                "must not be empty",
            ),
            (
                "[server]\n",
                "server.api_key",
                None,
                "required key is missing",
            ),
            (
                "[server]\napi_key = 5\n",
                "server.api_key",
                Some(2),
                "found integer",
            ),
            (
                "[server]\napi_key = { env = \"JACK_TEST_UNSET\" }\n",
                "server.api_key",
                Some(2),
                "JACK_TEST_UNSET is not set",
            ),
            (
                "[server]\napi_key = { file = \"relative/key\" }\n",
                "server.api_key",
                Some(2),
                "must be an absolute path",
            ),
            (
                "[server]\napi_key = { file = \"/nonexistent/jack-key\" }\n",
                "server.api_key",
                Some(2),
                "cannot read secret file",
            ),
            (
                "[server]\napi_key = { env = \"A\", file = \"/b\" }\n",
                "server.api_key",
                Some(2),
                "expected a string, { env",
            ),
            (
                "[server]\napi_key = { vault = \"x\" }\n",
                "server.api_key.vault",
                Some(2),
                "unknown key",
            ),
        ]);
    }

    #[test]
    fn secrets_come_from_env_and_file_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("peer.key");
        std::fs::write(&key_file, "file-secret-value\n").unwrap();
        let env = |k: &str| (k == "JACK_API_KEY").then(|| "env-secret-value".to_string());
        let text = format!(
            "[server]\napi_key = {{ env = \"JACK_API_KEY\" }}\n[[peers]]\nname = \"alice\"\nurl = \"http://127.0.0.1:5226/\"\napi_key = {{ file = {:?} }}\n",
            key_file.display()
        );
        let c = Config::parse(&text, Path::new("/x/jack.toml"), &env).unwrap();
        assert_eq!(c.server.api_key.expose(), "env-secret-value");
        assert_eq!(
            c.server.api_key.origin(),
            &SecretOrigin::Env("JACK_API_KEY".into())
        );
        assert_eq!(c.peers.current()[0].api_key.expose(), "file-secret-value");
        assert_eq!(c.peers.current()[0].url, "http://127.0.0.1:5226");
        let shown = format!("{c}\n{c:?}");
        assert!(
            !shown.contains("env-secret-value") && !shown.contains("file-secret-value"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn secret_files_are_regular_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let big = dir.path().join("big.key");
        std::fs::write(&big, "k".repeat(16 * 1024 + 1)).unwrap();
        let most = dir.path().join("most.key");
        std::fs::write(&most, "k".repeat(16 * 1024)).unwrap();
        let text = |path: &Path| format!("[server]\napi_key = {{ file = {:?} }}\n", path.display());
        let cases = [
            (fifo.clone(), "not a regular file"),
            (PathBuf::from("/dev/zero"), "not a regular file"),
            (dir.path().to_path_buf(), "not a regular file"),
            (big, "larger than 16384 bytes"),
        ];
        for (path, why) in cases {
            let t = text(&path);
            // A FIFO without a writer must not hold the parse: bounded.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(problems(&t)).unwrap());
            let list = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("reading {} blocked", path.display()));
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0].key, "server.api_key");
            assert_eq!(list[0].line, Some(2));
            assert!(
                list[0].message.contains("cannot read secret file")
                    && list[0].message.contains(why),
                "{}: {}",
                path.display(),
                list[0].message
            );
        }
        let c = parse(&text(&most)).unwrap();
        assert_eq!(c.server.api_key.expose().len(), 16 * 1024);
    }
}
