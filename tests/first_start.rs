//! Installing the way NAS owners install things (issue 21), with the real
//! binary: `jack ping` (the container's health check) against a node that
//! is up, down, not jack or silent; `jack init` and `jack run --init` (the
//! container's first start) writing a commented default `jack.toml` once,
//! never over a file, and starting on it.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `jack ping` with `args`, from `site`'s folder.
fn ping(site: &Site, args: &[&str]) -> Output {
    let mut all = vec!["ping"];
    all.extend(args);
    site.command(&all).output().unwrap()
}

/// One plain line on stderr, exit 1, and no OS error text.
fn assert_unhealthy(out: &Output, says: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(says), "{says:?} in {err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn ping_is_0_when_the_node_answers_and_1_with_a_plain_line_when_not() {
    let site = Site::new("");
    let addr = site.listen_on_a_free_port();
    let config = site.config();
    let config = config.to_str().unwrap();
    let mut node = site.start();

    let out = ping(&site, &["--config", config]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.starts_with(&format!("ok: the node answers at http://{addr}/ping (")),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
    // JACK_CONFIG, as the image sets it, and --url with no configuration.
    let out = site
        .command(&["ping"])
        .env("JACK_CONFIG", config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ping(&site, &["--url", &format!("http://{addr}/")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    node.signal("TERM");
    node.wait_exit(Duration::from_secs(10)).expect("node stops");
    let out = ping(&site, &["--config", config]);
    assert_unhealthy(
        &out,
        &format!("the node is not answering at http://{addr}/ping (connection refused"),
    );
}

#[test]
fn ping_says_what_answered_when_it_is_not_a_healthy_jack() {
    let site = Site::new("");
    // Something else on the port: a 404 page.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in other.incoming().take(1) {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    });
    let out = ping(&site, &["--url", &format!("http://{other_addr}")]);
    assert_unhealthy(&out, "is not healthy: it answered 404 not found");

    // A node that accepts and never answers: unhealthy within the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let started = Instant::now();
    let out = ping(&site, &["--url", &format!("http://{silent_addr}")]);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_unhealthy(&out, "(no answer within 5 s)");
    drop(silent);

    // No configuration to read: unhealthy (1, not 2: a health check's 2 is reserved).
    let out = ping(&site, &["--config", "/nonexistent/jack.toml"]);
    assert_unhealthy(
        &out,
        "cannot check the node: there is no configuration at /nonexistent/jack.toml",
    );
    // A URL that is not one is bad usage.
    let out = ping(&site, &["--url", "127.0.0.1:5225"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("must start with http://"));
}

/// The owner key written into `config`.
fn key_in(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().find(|l| l.starts_with("api_key = ")).unwrap();
    line["api_key = ".len()..].trim_matches('"').to_string()
}

#[test]
fn init_writes_a_commented_default_once_and_never_over_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config/jack.toml");
    let data = dir.path().join("data");
    let (c, d) = (config.to_str().unwrap(), data.to_str().unwrap());
    let out = jack_command()
        .args(["init", "--config", c, "--data", d])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("wrote a default one there (mode 0600)"),
        "{said}"
    );
    assert!(said.contains(&format!("edit {c}: public_url")), "{said}");
    let key = key_in(&config);
    assert_eq!(key.len(), 64);
    assert!(!said.contains(&key), "the key is never printed");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for folder in [
        "media/movies",
        "media/tv",
        "jack/watch",
        "jack/incomplete",
        "jack/completed",
    ] {
        assert!(data.join(folder).is_dir(), "{folder}");
    }
    // It is a valid configuration with the container's layout.
    let out = jack_command()
        .args(["check-config", "--config", c])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let effective = text(&out.stdout);
    assert!(
        effective.contains("listen = \"0.0.0.0:5225\""),
        "{effective}"
    );
    assert!(
        effective.contains(&format!("{d}/media/movies")),
        "{effective}"
    );
    assert!(effective.contains(&format!("{}/jack.db", dir.path().join("config").display())));
    assert!(!effective.contains("[[peers]]"), "no friend yet");

    // Again: refused, the file as it was.
    let before = std::fs::read(&config).unwrap();
    let out = jack_command()
        .args(["init", "--config", c, "--data", d])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists: jack init never writes over"));
    assert_eq!(std::fs::read(&config).unwrap(), before);
}

#[test]
fn run_init_starts_on_an_existing_configuration_without_touching_it() {
    let site = Site::new("");
    let addr = site.listen_on_a_free_port();
    let before = std::fs::read(site.config()).unwrap();
    let data = site.path().join("volume");
    let config = site.config();
    let node = Node::spawn(site.command(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "--init",
        "--data",
        data.to_str().unwrap(),
    ]));
    assert_eq!(node.addr, addr);
    assert_eq!(get(addr, "/ping").status, 200);
    assert_eq!(std::fs::read(site.config()).unwrap(), before);
    assert!(
        !node.log_text().contains("first start"),
        "{}",
        node.log_text()
    );
    assert!(
        !data.exists(),
        "nothing written for a first start that was not one"
    );
}

/// `unshare -n` works here (root, or user namespaces): a private network
/// with only its own loopback, where the default's 0.0.0.0:5225 is bound
/// without touching this machine's network.
fn private_network() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn run_init_writes_the_default_then_starts_and_answers_its_health_check() {
    if !private_network() {
        eprintln!("skipped: `unshare -n` is not permitted here (needs root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config/jack.toml");
    let data = dir.path().join("data");
    let mut cmd = Command::new("unshare");
    cmd.arg("-n")
        .args(jack_argv())
        .args(["--config", config.to_str().unwrap(), "run", "--init"])
        .args(["--data", data.to_str().unwrap()])
        .env_remove("JACK_CONFIG")
        .env_remove("JACK_LOG");
    let node = Node::spawn(cmd);
    assert_eq!(node.addr.to_string(), "0.0.0.0:5225");
    let log = node.log_text();
    assert!(
        log.contains("WARN  jack::cli: first start: no configuration was at"),
        "{log}"
    );
    assert!(log.contains("then restart jack"), "{log}");
    assert!(!log.contains(&key_in(&config)), "the key is never logged");
    assert!(
        dir.path().join("config/jack.db").exists(),
        "the registry beside the file"
    );
    assert!(data.join("media/movies").is_dir());

    // The health check, inside the node's network.
    let pid = node.pid().to_string();
    let net = |args: &[String]| {
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid, "-n"]).args(args);
        c.output().unwrap()
    };
    let up = net(&[
        "ip".into(),
        "link".into(),
        "set".into(),
        "lo".into(),
        "up".into(),
    ]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let mut argv = jack_argv();
    argv.extend([
        "ping".into(),
        "--config".into(),
        config.to_str().unwrap().into(),
    ]);
    let out = net(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: the node answers at http://127.0.0.1:5225/ping"));
}
