//! The command line: `jack [--config PATH] [run [--init [--data DIR]] | init [--data DIR] | ping [--url URL] | check-config | status [--json] [--watch] | pause ID | resume ID | retry ID | arr register | scan | key new NAME]`.
//!
//! Parses arguments into a [`Command`], finds the configuration file
//! (`--config`, then `JACK_CONFIG`, then `./jack.toml`) and dispatches.
//! Usage errors are [`Error::Usage`] (exit 2).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::config::{Config, LogFormat};
use crate::error::{Error, Result};

pub const USAGE: &str = "\
jack: share media libraries between friends through Radarr/Sonarr

usage:
  jack [--config PATH] [run]              start the node (the default command)
  jack run --init [--data DIR]            the same, after writing a default jack.toml if there is none
                                          (the container's command; see `jack init`)
  jack init [--data DIR] [--config PATH]  write a commented default jack.toml with a new owner key, listening
                                          on 0.0.0.0:5225, the registry beside it, libraries and downloads
                                          under DIR (default /data), folders created; never over a file
  jack ping [--url URL] [--config PATH]   ask the node's /ping (server.listen, or URL): exit 0 when it
                                          answers, 1 otherwise (the container's health check)
  jack check-config [--config PATH]       validate jack.toml and print the effective configuration
  jack status [--json] [--watch] [--config PATH]
                                          list downloads (from the daemon if it runs, else the registry);
                                          --watch refreshes every second until Ctrl-C
  jack pause ID [--config PATH]           pause a download: it stops, keeps its bytes and waits for a resume
  jack resume ID [--config PATH]          resume a paused or failed download where it stopped (retry ID: the same)
  jack retry-stub FILE [--config PATH]    put a stub the watch folder set aside (X.torrent.failed, .invalid,
                                          .duplicate; see `jack status`) back, to be read again
  jack arr register [--config PATH]       add jack to each [[arr]] as indexer and download client
  jack scan [--config PATH]               scan the libraries now, with progress, and print what friends will see
  jack key new NAME                       print a fresh key for the friend NAME and its [[server.peer_keys]] entry
  jack --version | --help

A running node reloads [[server.peer_keys]], [[peers]] and the speed limits
on SIGHUP (a file that fails validation is refused and the running values kept).
The configuration is --config PATH, else $JACK_CONFIG, else ./jack.toml.
JACK_LOG=debug overrides log.level.
Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
";

/// What `jack --version` says: the version, the commit it was built from
/// and the target (`jack 0.2.0 (commit 1a2b3c4d5e6f, aarch64-unknown-linux-musl)`).
pub fn version() -> String {
    format!(
        "jack {} (commit {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("JACK_COMMIT"),
        env!("JACK_TARGET")
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `run`, with `--init`: first write the default configuration when
    /// there is none.
    Run {
        init: bool,
    },
    /// `init`: write the default configuration (never over a file).
    Init,
    /// `ping [--url URL]`.
    Ping {
        url: Option<String>,
    },
    CheckConfig,
    Status {
        json: bool,
        watch: bool,
    },
    /// `pause ID`, `resume ID` (and `retry ID`, resume's older name).
    Control {
        action: crate::owner::control::Action,
        id: i64,
    },
    /// `retry-stub FILE`: a stub set aside put back.
    RetryStub {
        file: String,
    },
    ArrRegister,
    Scan,
    /// `hash-speed` (not in the usage: `BENCHMARKS.md`): the hasher's
    /// SHA-256 over 256 MiB in memory, in MB/s.
    HashSpeed,
    KeyNew {
        name: String,
    },
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
    /// `--data DIR` of `init` and `run --init`: the data volume.
    pub data: Option<PathBuf>,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args> {
    let usage = |msg: String| Error::Usage(format!("{msg}\n\n{USAGE}"));
    let mut command: Option<Command> = None;
    let mut config = None;
    let mut json = false;
    let mut watch = false;
    let mut init = false;
    let mut data = None;
    let mut url = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(a) = arg.to_str() else {
            return Err(usage(format!("argument {arg:?} is not valid UTF-8")));
        };
        match a {
            "-h" | "--help" => {
                return Ok(Args {
                    command: Command::Help,
                    config,
                    data,
                });
            }
            "-V" | "--version" => {
                return Ok(Args {
                    command: Command::Version,
                    config,
                    data,
                });
            }
            "-c" | "--config" => match args.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => return Err(usage(format!("{a} needs a path"))),
            },
            _ if a.starts_with("--config=") => {
                config = Some(PathBuf::from(&a["--config=".len()..]))
            }
            "--data" => match args.next() {
                Some(p) => data = Some(PathBuf::from(p)),
                None => return Err(usage("--data needs a folder".into())),
            },
            "--url" => match args.next().map(|u| u.into_string()) {
                Some(Ok(u)) => url = Some(u),
                _ => {
                    return Err(usage(
                        "--url needs a URL such as http://127.0.0.1:5225".into(),
                    ));
                }
            },
            "--init" => init = true,
            "--json" => json = true,
            "--watch" => watch = true,
            "pause" | "resume" | "retry" if command.is_none() => {
                use crate::owner::control::Action;
                let action = if a == "pause" {
                    Action::Pause
                } else {
                    Action::Resume
                };
                let id = args
                    .next()
                    .and_then(|v| v.to_str().and_then(crate::lexical::decimal::<i64>));
                match id {
                    Some(id) => command = Some(Command::Control { action, id }),
                    None => {
                        return Err(usage(format!(
                            "{a} needs a download id (see `jack status`)"
                        )));
                    }
                }
            }
            "retry-stub" if command.is_none() => {
                match args.next().as_ref().and_then(|v| v.to_str()) {
                    Some(file) => {
                        command = Some(Command::RetryStub {
                            file: file.to_string(),
                        })
                    }
                    None => {
                        return Err(usage(
                            "retry-stub needs the name of a stub set aside (see `jack status`)"
                                .into(),
                        ));
                    }
                }
            }
            "arr" if command.is_none() => match args.next().as_ref().and_then(|v| v.to_str()) {
                Some("register") => command = Some(Command::ArrRegister),
                _ => return Err(usage("arr needs a subcommand: `jack arr register`".into())),
            },
            "key" if command.is_none() => {
                let sub = args.next();
                let name = args.next();
                match (sub.as_ref().and_then(|v| v.to_str()), name) {
                    (Some("new"), Some(n)) => match n.to_str() {
                        Some(n) if crate::config::valid_name(n) => {
                            command = Some(Command::KeyNew {
                                name: n.to_string(),
                            })
                        }
                        _ => {
                            return Err(usage(format!(
                                "key new: the name {n:?} {}",
                                crate::config::NAME_RULE
                            )));
                        }
                    },
                    _ => return Err(usage("key needs `new NAME`: `jack key new alice`".into())),
                }
            }
            "run" | "init" | "ping" | "check-config" | "status" | "scan" | "hash-speed"
                if command.is_none() =>
            {
                command = Some(match a {
                    "run" => Command::Run { init: false },
                    "init" => Command::Init,
                    "ping" => Command::Ping { url: None },
                    "check-config" => Command::CheckConfig,
                    "scan" => Command::Scan,
                    "hash-speed" => Command::HashSpeed,
                    _ => Command::Status {
                        json: false,
                        watch: false,
                    },
                })
            }
            _ if a.starts_with('-') => return Err(usage(format!("unknown option {a}"))),
            _ => return Err(usage(format!("unexpected argument {a:?}"))),
        }
    }
    let command = command.unwrap_or(Command::Run { init: false });
    let only = |yes: bool, flag: &str, command: &str| match yes {
        true => Err(usage(format!("{flag} applies only to `jack {command}`"))),
        false => Ok(()),
    };
    let is_status = matches!(command, Command::Status { .. });
    only(
        (json || watch) && !is_status,
        if json { "--json" } else { "--watch" },
        "status",
    )?;
    only(
        init && !matches!(command, Command::Run { .. }),
        "--init",
        "run",
    )?;
    only(
        url.is_some() && !matches!(command, Command::Ping { .. }),
        "--url",
        "ping",
    )?;
    let command = match command {
        Command::Status { .. } => Command::Status { json, watch },
        Command::Run { .. } => Command::Run { init },
        Command::Ping { .. } => Command::Ping { url },
        other => other,
    };
    if data.is_some() && !matches!(command, Command::Init | Command::Run { init: true }) {
        return Err(usage(
            "--data applies only to `jack init` and `jack run --init`".into(),
        ));
    }
    Ok(Args {
        command,
        config,
        data,
    })
}

/// Runs the command line; the caller turns the error into an exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let args = parse(args)?;
    let env = |k: &str| std::env::var(k).ok();
    let config_path = args
        .config
        .clone()
        .or_else(|| {
            std::env::var_os("JACK_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("jack.toml"));
    let data_dir = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::init::DEFAULT_DATA));
    let mut stdout = std::io::stdout().lock();
    let print = |out: &mut dyn Write, s: &str| {
        out.write_all(s.as_bytes())
            .map_err(|e| Error::io("cannot write to stdout", e))
    };
    match args.command {
        Command::Help => print(&mut stdout, USAGE),
        Command::Version => print(&mut stdout, &format!("{}\n", version())),
        Command::CheckConfig => {
            let config = Config::load(&config_path, &env)?;
            config.check_folders()?;
            for warning in crate::keys::weak_secrets(&config) {
                eprintln!("warning: {warning}");
            }
            print(&mut stdout, &config.to_string())
        }
        Command::Status { json, watch } => {
            let config = Config::load(&config_path, &env)?;
            crate::logger::init(log::LevelFilter::Warn, LogFormat::Text);
            crate::owner::status::run(&config, json, watch, &mut stdout)
        }
        Command::Control { action, id } => {
            let config = Config::load(&config_path, &env)?;
            crate::logger::init(log::LevelFilter::Warn, LogFormat::Text);
            crate::owner::control::run(&config, action, id, &mut stdout)
        }
        Command::KeyNew { name } => {
            let key = crate::keys::random_hex::<32>()
                .map_err(|e| Error::io("cannot read /dev/urandom", e))?;
            print(&mut stdout, &crate::keys::new_entry(&name, &key))
        }
        Command::RetryStub { file } => {
            let config = Config::load(&config_path, &env)?;
            crate::logger::init(log::LevelFilter::Warn, LogFormat::Text);
            crate::owner::control::retry_stub(&config, &file, &mut stdout)
        }
        Command::ArrRegister => {
            let config = Config::load(&config_path, &env)?;
            crate::logger::init(log::LevelFilter::Warn, LogFormat::Text);
            crate::arr::register::run(&config, &mut stdout)
        }
        Command::Scan => {
            let config = Config::load(&config_path, &env)?;
            crate::logger::init(log::LevelFilter::Warn, LogFormat::Text);
            crate::scan::run(&config, &mut stdout, &mut std::io::stderr())
        }
        Command::HashSpeed => {
            let bytes = 256 << 20;
            let took = crate::serve::hasher::speed(bytes);
            let mb_per_s = bytes as f64 / took.as_secs_f64().max(1e-9) / 1e6;
            print(
                &mut stdout,
                &format!(
                    "hash-speed target={} bytes={bytes} secs={:.3} mb_per_s={mb_per_s:.1}\n",
                    env!("JACK_TARGET"),
                    took.as_secs_f64()
                ),
            )
        }
        Command::Init => match crate::init::write_default(&config_path, &data_dir)? {
            Some(written) => print(&mut stdout, &(written.lines().join("\n") + "\n")),
            None => Err(Error::Runtime(format!(
                "{} already exists: jack init never writes over a configuration (move it away first)",
                config_path.display()
            ))),
        },
        Command::Ping { url } => {
            let url = crate::owner::ping::target(url.as_deref(), &config_path, || {
                Config::load(&config_path, &env)
            })?;
            crate::owner::ping::run(&url, &mut stdout)
        }
        Command::Run { init } => {
            drop(stdout);
            let written = match init {
                true => crate::init::write_default(&config_path, &data_dir)?,
                false => None,
            };
            let config = Config::load(&config_path, &env)?;
            config.check_folders()?;
            crate::logger::init(config.log.level, config.log.format);
            for line in written.iter().flat_map(|w| w.lines()) {
                log::warn!("{line}");
            }
            log::info!("configuration loaded file={}", config.file.display());
            crate::daemon::run(config)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn commands_and_options() {
        let run = |config: Option<&str>| Args {
            command: Command::Run { init: false },
            config: config.map(PathBuf::from),
            data: None,
        };
        assert_eq!(p(&[]).unwrap(), run(None));
        assert_eq!(p(&["run"]).unwrap(), run(None));
        assert_eq!(p(&["--config", "/a.toml"]).unwrap(), run(Some("/a.toml")));
        assert_eq!(p(&["run", "-c", "/a.toml"]).unwrap(), run(Some("/a.toml")));
        assert_eq!(
            p(&["--config=/b.toml", "run"]).unwrap(),
            run(Some("/b.toml"))
        );
        assert_eq!(
            p(&["status", "--json"]).unwrap().command,
            Command::Status {
                json: true,
                watch: false
            }
        );
        assert_eq!(
            p(&["--json", "status"]).unwrap().command,
            Command::Status {
                json: true,
                watch: false
            }
        );
        assert_eq!(p(&["check-config"]).unwrap().command, Command::CheckConfig);
        assert_eq!(p(&["scan"]).unwrap().command, Command::Scan);
        assert_eq!(p(&["hash-speed"]).unwrap().command, Command::HashSpeed);
        assert_eq!(
            p(&["key", "new", "alice"]).unwrap().command,
            Command::KeyNew {
                name: "alice".into()
            }
        );
        assert_eq!(p(&["--version"]).unwrap().command, Command::Version);
        assert_eq!(p(&["status", "-h"]).unwrap().command, Command::Help);
        assert_eq!(
            p(&["arr", "register", "-c", "/a.toml"]).unwrap(),
            Args {
                command: Command::ArrRegister,
                config: Some(PathBuf::from("/a.toml")),
                data: None,
            }
        );
        assert_eq!(
            p(&["run", "--init", "--data", "/d"]).unwrap(),
            Args {
                command: Command::Run { init: true },
                config: None,
                data: Some(PathBuf::from("/d")),
            }
        );
        assert_eq!(p(&["init"]).unwrap().command, Command::Init);
        assert_eq!(
            p(&["ping", "--url", "http://127.0.0.1:1"]).unwrap().command,
            Command::Ping {
                url: Some("http://127.0.0.1:1".into())
            }
        );
        assert_eq!(p(&["ping"]).unwrap().command, Command::Ping { url: None });
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            &["--bogus"][..],
            &["frobnicate"],
            &["--config"],
            &["run", "status"],
            &["run", "--json"],
            &["arr"],
            &["arr", "frobnicate"],
            &["arr", "register", "--json"],
            &["key"],
            &["key", "new"],
            &["key", "new", "bad name"],
            &["key", "old", "alice"],
            &["status", "--init"],
            &["run", "--data", "/d"],
            &["status", "--data", "/d"],
            &["--data"],
            &["run", "--url", "http://x"],
            &["ping", "--url"],
        ] {
            let err = p(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert!(err.to_string().contains("usage:"), "{bad:?}");
        }
    }
}
