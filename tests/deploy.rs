//! The deployment files in `contrib/` and `docs/`: the systemd unit parses
//! and keeps its sandbox and its promises to the daemon (stop budget, reload
//! signal, one writable mount for the hand-off), and the docs show the
//! snippets that are actually shipped. No root, no systemd needed; run
//! `systemd-analyze verify` as well where it exists (docs/INSTALL-NAS.md).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `section -> key -> values` (a key may repeat, as systemd allows).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A strict reader of systemd's unit syntax (no line continuations: the
/// unit does not use them, and a stray one would be caught here).
fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "line {}: continuation", n + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            unit.entry(name.to_string()).or_default();
            continue;
        }
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: directive before any [section]", n + 1));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        let key = key.trim();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key {key:?}",
            n + 1
        );
        unit.get_mut(section)
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    unit
}

fn one<'u>(unit: &'u Unit, section: &str, key: &str) -> &'u str {
    let values = unit
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] has no {key}="));
    assert_eq!(
        values.len(),
        1,
        "[{section}] {key}= is set {} times",
        values.len()
    );
    &values[0]
}

/// systemd's time spans as this unit writes them: `15`, `15s`, `500ms`, `1min`.
fn span(value: &str) -> Duration {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (n, unit) = value.split_at(split);
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("not a time span: {value}"));
    match unit {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "min" => Duration::from_secs(60 * n),
        _ => panic!("unit of {value} not understood"),
    }
}

#[test]
fn the_unit_is_sandboxed_and_keeps_the_daemons_contract() {
    let unit = parse_unit(&read("contrib/jack.service"));
    assert_eq!(
        unit.keys().collect::<Vec<_>>(),
        ["Install", "Service", "Unit"],
        "sections"
    );
    let service = "Service";
    assert_eq!(
        one(&unit, service, "ExecStart"),
        "/usr/local/bin/jack --config /etc/jack/jack.toml run"
    );
    assert_eq!(one(&unit, service, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(&unit, service, "KillSignal"), "SIGTERM");
    assert_eq!(one(&unit, service, "Restart"), "on-failure");
    // A bad configuration exits 2: restarting cannot fix it.
    assert_eq!(one(&unit, service, "RestartPreventExitStatus"), "2");
    assert!(span(one(&unit, service, "RestartSec")) >= Duration::from_secs(1));

    // systemd must wait longer than jack's own shutdown watchdog, or a
    // clean stop could be cut by SIGKILL.
    let stop = span(one(&unit, service, "TimeoutStopSec"));
    assert!(
        stop > jack::daemon::SHUTDOWN_BUDGET + Duration::from_secs(2),
        "TimeoutStopSec {stop:?} leaves no margin over {:?}",
        jack::daemon::SHUTDOWN_BUDGET
    );

    for (key, value) in [
        ("User", "jack"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictNamespaces", "yes"),
        ("SystemCallArchitectures", "native"),
        ("StateDirectory", "jack"),
        ("UMask", "0002"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(&unit, service, key), value, "{key}=");
    }
    assert!(
        !unit[service].contains_key("DynamicUser"),
        "a fixed user owns the files *arr imports"
    );
    assert!(!one(&unit, service, "Group").is_empty());

    // One writable bind mount for watch, incomplete and completed: two
    // would make the hand-off a copy (a link cannot cross mounts).
    let writable = &unit[service]["ReadWritePaths"];
    assert_eq!(writable.len(), 1, "ReadWritePaths: {writable:?}");
    assert_eq!(
        writable[0].split_whitespace().count(),
        1,
        "ReadWritePaths: {writable:?}"
    );

    // The secret reaches jack as a credential, at the path the docs give.
    let credential = one(&unit, service, "LoadCredential");
    let (name, source) = credential
        .split_once(':')
        .expect("LoadCredential=NAME:PATH");
    assert!(source.starts_with("/etc/jack/"), "{credential}");
    let install = read("docs/INSTALL-NAS.md");
    let path = format!("/run/credentials/jack.service/{name}");
    assert!(
        install.contains(&path),
        "INSTALL-NAS.md does not show {path}"
    );

    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn the_docs_show_the_shipped_proxy_configurations() {
    let doc = read("docs/REVERSE-PROXY.md");
    for file in ["contrib/nginx/jack.conf", "contrib/Caddyfile"] {
        let text = read(file);
        assert!(
            doc.contains(text.trim_end()),
            "docs/REVERSE-PROXY.md does not quote {file} verbatim"
        );
    }
    let nginx = read("contrib/nginx/jack.conf");
    for directive in [
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "proxy_max_temp_file_size 0;",
        "gzip off;",
        "limit_conn ",
        "client_header_timeout ",
        "client_body_timeout ",
        "send_timeout ",
        "proxy_read_timeout ",
        "location = /ping",
        "location = /handshake",
        "location /peer/",
        "proxy_pass http://127.0.0.1:5225;",
    ] {
        assert!(
            nginx.contains(directive),
            "nginx snippet lacks {directive:?}"
        );
    }
    // Range and If-Range must reach jack untouched: nothing may clear them.
    for header in ["Range", "If-Range"] {
        assert!(
            !nginx.contains(&format!("proxy_set_header {header} ")),
            "nginx snippet rewrites {header}"
        );
    }
}

#[test]
fn the_readme_links_the_deployment_docs() {
    let readme = read("README.md");
    for link in [
        "docs/INSTALL-NAS.md",
        "docs/REVERSE-PROXY.md",
        "contrib/jack.service",
    ] {
        assert!(readme.contains(link), "README.md does not link {link}");
    }
}

/// The lines of `text` that are not comments, trimmed.
fn settings(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The shipped compose file runs the image `make image` makes, as it is
/// made: its tag, the two volumes (one `/data`, so hand-offs and imports are
/// hard links), the port the first start listens on, a chosen uid:gid, the
/// image's own command (the first start), and the read-only root with the
/// tmpfs `/tmp` that `make check-image` runs the entrypoint under.
#[test]
fn the_compose_file_runs_the_image_as_made() {
    let compose = read("contrib/docker-compose.yml");
    let containerfile = read("Containerfile");
    let image = read("scripts/oci-image.py");
    let lines = settings(&compose);
    assert!(lines.contains(&"image: jack:latest"), "{compose}");
    assert!(
        image.contains("\"jack:latest\""),
        "make image tags jack:latest"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("command:") || l.starts_with("entrypoint:")),
        "the compose file must keep the image's command (run --init)"
    );
    assert!(lines.contains(&"user: \"${PUID:-1000}:${PGID:-1000}\""));
    let volumes: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("- "))
        .filter(|v| v.contains(":/"))
        .collect();
    let targets = |read_only: bool| -> Vec<&str> {
        volumes
            .iter()
            .filter(|v| v.ends_with(":ro") == read_only)
            .filter_map(|v| v.split(':').nth(1))
            .filter(|t| t.starts_with('/'))
            .collect()
    };
    // /config and /data are the only writable volumes; the host's time
    // zone comes in read-only (the image has no zone files).
    assert_eq!(targets(false), ["/config", "/data"], "volumes: {volumes:?}");
    assert_eq!(targets(true), ["/etc/localtime"], "volumes: {volumes:?}");
    assert!(volumes.contains(&"/etc/localtime:/etc/localtime:ro"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("- \"") && l.ends_with(":5225\"")),
        "the port: {compose}"
    );
    assert!(lines.contains(&"read_only: true"));
    let tmpfs = lines.iter().position(|l| *l == "tmpfs:").expect("a tmpfs");
    assert_eq!(lines[tmpfs + 1], "- /tmp");

    let made = settings(&containerfile);
    for line in [
        "VOLUME [\"/config\", \"/data\"]",
        "EXPOSE 5225",
        "USER 1000:1000",
        "ENTRYPOINT [\"/jack\"]",
        "CMD [\"run\", \"--init\"]",
    ] {
        assert!(made.contains(&line), "Containerfile lacks {line}");
    }
    assert!(
        made.iter()
            .any(|l| l.starts_with("HEALTHCHECK ") && l.ends_with("CMD [\"/jack\", \"ping\"]")),
        "the health check is jack ping"
    );
    // The first start listens where the image says it does.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jack.toml");
    let data = dir.path().join("data");
    let out = support::jack_command()
        .arg("--config")
        .arg(&config)
        .arg("init")
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("listen = \"0.0.0.0:5225\""), "{written}");
}
