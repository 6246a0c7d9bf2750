//! First start: `jack init` and `jack run --init` (the container image's
//! command) write a commented default `jack.toml` where there is none.
//!
//! The text is the shipped `jack.toml` (every key with its default and its
//! documentation) with the container's layout put in ([`default_config`]):
//! listening on `0.0.0.0:5225`, the registry beside the file, the libraries
//! and the download folders on one data volume (`/data` unless `--data`),
//! no friend yet, and a fresh owner key from the same generator as
//! `jack key new`. The folders it names are created, the file is written
//! mode 0600 and linked into place, so an existing file is never
//! overwritten, not even by a second jack starting at the same moment.
//! Must not log or print the key: the file holds it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The data volume of the container image.
pub const DEFAULT_DATA: &str = "/data";

/// The reference configuration the default is made from.
const SHIPPED: &str = include_str!("../jack.toml");

/// What a first start wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub config: PathBuf,
    pub data: PathBuf,
    /// The folders the file names, each created.
    pub folders: Vec<PathBuf>,
}

impl Written {
    /// The lines a first start says (the log, `jack init`'s stdout): what
    /// was written and what to edit. Never the key.
    pub fn lines(&self) -> Vec<String> {
        let file = self.config.display();
        vec![
            format!(
                "first start: no configuration was at {file}, so jack wrote a default one there (mode 0600) with a new random owner key (server.api_key)"
            ),
            format!(
                "first start: libraries {} and {}, downloads under {}, registry {}",
                self.data.join("media/movies").display(),
                self.data.join("media/tv").display(),
                self.data.join("jack").display(),
                registry_path(&self.config).display(),
            ),
            format!(
                "first start: edit {file}: public_url (how your Radarr/Sonarr and your friends reach this node), [[peers]] (your friends' nodes) and [[library]], then restart jack; the owner key in that file opens the status page and goes into Radarr/Sonarr"
            ),
        ]
    }
}

/// Where the default puts the registry: beside the configuration file.
fn registry_path(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new("/")).join("jack.db")
}

/// The library and download folders of the default, under `data`.
fn folders(data: &Path) -> [(&'static str, PathBuf); 5] {
    [
        ("movies", data.join("media/movies")),
        ("tv", data.join("media/tv")),
        ("watch", data.join("jack/watch")),
        ("incomplete", data.join("jack/incomplete")),
        ("completed", data.join("jack/completed")),
    ]
}

/// The default `jack.toml` for a configuration file at `config` (absolute)
/// and the data volume `data`, with the owner key `key`: the shipped text
/// with each line of the layout replaced. `Err` names a line that is no
/// longer in the shipped text (a unit test keeps them in step).
pub fn default_config(config: &Path, data: &Path, key: &str) -> Result<String, String> {
    let [movies, tv, watch, incomplete, completed] = folders(data).map(|(_, p)| p);
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let replacements = [
        (
            " This file runs as is\n# (`make run`): a local SQLite registry, a sample library and a watch folder,\n# all under this directory. Relative",
            " Relative".to_string(),
        ),
        (
            "\nlisten = \"127.0.0.1:5225\"\n",
            "\nlisten = \"0.0.0.0:5225\"\n".into(),
        ),
        (
            "\npublic_url = \"http://127.0.0.1:5225\"\n",
            "\npublic_url = \"http://jack:5225\"\n".into(),
        ),
        (
            "\n# The key peers and Radarr/Sonarr must present. Required; change it.\napi_key = \"change-me\"\n",
            format!(
                "\n# The key peers and Radarr/Sonarr must present (made at random on the first start).\napi_key = \"{key}\"\n"
            ),
        ),
        (
            "\npath = \"data/jack.db\"\n",
            format!("\npath = {}\n", quoted(&registry_path(config))),
        ),
        (
            "\npath = \"media/movies\"\n",
            format!("\npath = {}\n", quoted(&movies)),
        ),
        (
            "\npath = \"media/tv\"\n",
            format!("\npath = {}\n", quoted(&tv)),
        ),
        (
            "\nwatch_dir = \"data/watch\"\n",
            format!("\nwatch_dir = {}\n", quoted(&watch)),
        ),
        (
            "\nincomplete_dir = \"data/incomplete\"\n",
            format!("\nincomplete_dir = {}\n", quoted(&incomplete)),
        ),
        (
            "\ncompleted_dir = \"data/completed\"\n",
            format!("\ncompleted_dir = {}\n", quoted(&completed)),
        ),
        // No friend yet: the sample's peer stays as an example, commented.
        ("\n[[peers]]\n", "\n# [[peers]]\n".into()),
        ("\nname = \"alice\"\n", "\n# name = \"alice\"\n".into()),
        (
            "\nurl = \"http://127.0.0.1:5226\"\n",
            "\n# url = \"http://alice.example:5225\"\n".into(),
        ),
        (
            "\napi_key = \"the key alice gave you\"\n",
            "\n# api_key = \"the key alice gave you\"\n".into(),
        ),
    ];
    let mut text = SHIPPED.to_string();
    for (from, to) in replacements {
        if text.matches(from).count() != 1 {
            return Err(format!(
                "the shipped jack.toml no longer has exactly one {from:?}"
            ));
        }
        text = text.replacen(from, &to, 1);
    }
    Ok(format!(
        "# jack.toml, written by jack on its first start (there was no file here).\n\
         #\n\
         # To edit, then restart jack:\n\
         #   * [server] public_url: how your Radarr/Sonarr and your friends reach\n\
         #     this node (http://jack:5225 is the name Compose gives a service\n\
         #     called jack on its network);\n\
         #   * [[peers]]: your friends' nodes, one table each, with the key each\n\
         #     gave you (`jack key new NAME` makes the keys you give them);\n\
         #   * [[library]]: the folders you share, now {} and {}.\n\
         # server.api_key is this node's owner key, made at random: Radarr/Sonarr's\n\
         # indexer and download client use it, and it opens the status page (/ui/).\n\
         # Keep this file private: it is readable by its owner only (mode 0600).\n\
         #\n\
         # What follows is jack's reference configuration with this layout.\n\
         #\n{text}",
        movies.display(),
        tv.display()
    ))
}

/// Writes the default configuration at `config` unless a file (or anything)
/// is there: `Ok(None)` then, and nothing changes. Creates the folders the
/// default names first, so a start that fails half way leaves no file and
/// the next one tries again.
pub fn write_default(config: &Path, data: &Path) -> Result<Option<Written>> {
    if config.symlink_metadata().is_ok() {
        return Ok(None);
    }
    let config = std::path::absolute(config)
        .map_err(|e| Error::Runtime(format!("cannot resolve {}: {e}", config.display())))?;
    let data = std::path::absolute(data)
        .map_err(|e| Error::Runtime(format!("cannot resolve {}: {e}", data.display())))?;
    let dir = config.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|e| cannot("create the folder", "configuration", &dir, &e))?;
    let mut made = Vec::new();
    for (what, folder) in folders(&data) {
        std::fs::create_dir_all(&folder)
            .map_err(|e| cannot("create the folder", what, &folder, &e))?;
        made.push(folder);
    }
    let key = crate::keys::random_hex::<32>()
        .map_err(|e| Error::io("cannot read /dev/urandom for a new owner key", e))?;
    let text = default_config(&config, &data, &key).map_err(Error::Runtime)?;
    let name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "jack.toml".into());
    // A random name, created exclusively: the pid is 1 in every container,
    // so a crash between write and clean-up, or a second container sharing
    // /config, would otherwise meet (or remove) the same file. A leftover
    // from a crash is left alone (it may be another start's, in flight).
    let suffix = crate::keys::random_hex::<8>()
        .map_err(|e| Error::io("cannot read /dev/urandom for a temporary file name", e))?;
    let temp = dir.join(format!(".{name}.{suffix}.new"));
    let result = write_new(&temp, &text).and_then(|()| match std::fs::hard_link(&temp, &config) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = std::fs::remove_file(&temp);
    match result {
        Ok(true) => {
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(Some(Written {
                config,
                data,
                folders: made,
            }))
        }
        Ok(false) => Ok(None),
        Err(e) => Err(cannot("write", "configuration", &config, &e)),
    }
}

/// A new file at `path`, mode 0600, holding `text`, synced.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A first start that cannot write, in words a NAS owner acts on: which
/// folder, why, and the user jack runs as (the container's `user:`).
fn cannot(action: &str, what: &str, path: &Path, err: &std::io::Error) -> Error {
    let who = format!(
        "uid {} gid {}",
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    );
    let hint = match err.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            ": jack runs as {who}; make the folder writable by that user on the host (chown) or run the container as the folder's owner (user: \"UID:GID\")"
        ),
        std::io::ErrorKind::ReadOnlyFilesystem => {
            ": the volume is mounted read-only; mount it writable".into()
        }
        _ => String::new(),
    };
    Error::Runtime(format!(
        "first start: cannot {action} {} ({what}): {}{hint}",
        path.display(),
        err.kind()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_default_is_the_shipped_file_with_the_container_layout() {
        let text = default_config(Path::new("/config/jack.toml"), Path::new("/data"), KEY).unwrap();
        // Every documentation line of the shipped file is still there,
        // but for the few the layout replaces.
        let replaced = [
            "This file runs as is",
            "(`make run`)",
            "all under this directory",
            "change it.",
        ];
        for line in SHIPPED.lines().filter(|l| l.starts_with('#')) {
            if !replaced.iter().any(|r| line.contains(r)) {
                assert!(text.lines().any(|l| l == line), "lost: {line}");
            }
        }
        let env = |_: &str| None;
        let c = Config::parse(&text, Path::new("/config/jack.toml"), &env).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:5225");
        assert_eq!(c.server.public_url, "http://jack:5225");
        assert_eq!(c.server.api_key.expose(), KEY);
        assert_eq!(c.database.path, Path::new("/config/jack.db"));
        let libraries: Vec<_> = c
            .libraries
            .iter()
            .map(|l| (l.name.as_str(), l.path.clone()))
            .collect();
        assert_eq!(
            libraries,
            [
                ("movies", PathBuf::from("/data/media/movies")),
                ("tv", PathBuf::from("/data/media/tv"))
            ]
        );
        assert_eq!(c.downloads.watch_dir, Path::new("/data/jack/watch"));
        assert_eq!(
            c.downloads.incomplete_dir,
            Path::new("/data/jack/incomplete")
        );
        assert_eq!(c.downloads.completed_dir, Path::new("/data/jack/completed"));
        assert!(c.peers.current().is_empty(), "no friend yet");
        assert!(text.starts_with("# jack.toml, written by jack on its first start"));
        assert!(crate::keys::weak_secrets(&c).is_empty());
    }

    #[test]
    fn written_once_mode_0600_never_over_a_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config/jack.toml");
        let data = dir.path().join("data");
        let w = write_default(&config, &data).unwrap().unwrap();
        assert_eq!(w.folders.len(), 5);
        for f in &w.folders {
            assert!(f.is_dir(), "{}", f.display());
        }
        let meta = std::fs::metadata(&config).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let first = std::fs::read_to_string(&config).unwrap();
        assert!(w.lines().iter().all(|l| !l.contains(&key_of(&first))));
        // A second first start finds the file and leaves it as it is.
        assert_eq!(write_default(&config, &data).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&config).unwrap(), first);
        // Nothing else was left in the folder (the temporary file is gone).
        let names: Vec<_> = std::fs::read_dir(config.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["jack.toml"]);
        // Two first starts make two different keys.
        let other = dir.path().join("other/jack.toml");
        write_default(&other, &data).unwrap().unwrap();
        let second = std::fs::read_to_string(&other).unwrap();
        assert_ne!(key_of(&first), key_of(&second));
        assert_eq!(key_of(&first).len(), 64);
    }

    /// A first start that crashed between writing its temporary file and
    /// removing it (in a container its pid was 1, as the next one's is),
    /// or another container's start in flight: neither stops this one.
    #[test]
    fn a_leftover_temporary_file_does_not_stop_the_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("jack.toml");
        let leftovers = [
            format!(".jack.toml.{}.new", std::process::id()),
            ".jack.toml.1.new".to_string(),
            ".jack.toml.0123456789abcdef.new".to_string(),
        ];
        for name in &leftovers {
            std::fs::write(dir.path().join(name), "half a file").unwrap();
        }
        let w = write_default(&config, &dir.path().join("data")).unwrap();
        assert!(w.is_some());
        assert!(
            std::fs::read_to_string(&config)
                .unwrap()
                .contains("api_key = ")
        );
        // The leftovers are not this start's to remove (one may be another
        // start's, not yet linked); nothing else is left.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".jack.toml."))
            .collect();
        names.sort();
        let mut want = leftovers.to_vec();
        want.sort();
        assert_eq!(names, want);
    }

    fn key_of(text: &str) -> String {
        let line = text.lines().find(|l| l.starts_with("api_key = ")).unwrap();
        line.trim_start_matches("api_key = ")
            .trim_matches('"')
            .to_string()
    }

    #[test]
    fn a_folder_that_cannot_be_written_is_said_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let err = write_default(&blocker.join("jack.toml"), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("first start: cannot create the folder"),
            "{text}"
        );
        assert!(!text.contains("os error"), "{text}");
        assert_eq!(err.exit_code(), 1);
    }
}
