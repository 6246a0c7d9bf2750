//! The plane rules of ARCHITECTURE.md, checked on the source tree: which
//! folder may use which. A new import across a plane fails here with the
//! file, the line and the rule, so the layout stays what the code map says.

use std::path::{Path, PathBuf};

/// The planes a file may not use, by where it lives. `owner/` and the
/// wiring at the top (`daemon`, `cli`, `scan`, `lib`, `main`) may use any.
fn forbidden(file: &str) -> (&'static str, &'static [&'static str]) {
    const PLANES: &[&str] = &["serve", "arr", "download", "owner", "http"];
    match file.split_once('/') {
        Some(("http", _)) => (
            "the HTTP server and its request tools know no plane",
            &["serve", "arr", "download", "owner"],
        ),
        Some(("download", _)) => (
            "the download plane knows no HTTP server, route or page",
            &["serve", "arr", "owner", "http"],
        ),
        Some(("serve", _)) => (
            "the serving plane uses only http, the spine and arr::library",
            &["arr", "download", "owner"],
        ),
        Some(("arr", _)) => (
            "the *arr plane uses http and download, never serve or owner",
            &["serve", "owner"],
        ),
        Some(("owner", _)) => ("the owner's surfaces may use any plane", &[]),
        Some(("db", _)) => ("the registry is spine: it uses no plane", PLANES),
        Some(("config", _)) => ("the configuration is spine: it uses no plane", PLANES),
        Some((other, _)) => panic!("a folder the layout does not know: src/{other}"),
        None => match file {
            "daemon.rs" | "cli.rs" | "scan.rs" | "lib.rs" | "main.rs" => ("wiring", &[]),
            _ => ("the spine uses no plane", PLANES),
        },
    }
}

/// Uses across planes the code map names as exceptions.
const ALLOWED: &[(&str, &str)] = &[
    // The catalogue reads Radarr/Sonarr libraries through the *arr client.
    ("serve/catalogue.rs", "arr::library"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(line, plane, path)` of every `crate::<plane>::<module>` before the
/// file's tests (unit tests may borrow a helper from anywhere).
fn uses(text: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let plane = path.split("::").next().unwrap_or("").to_string();
            found.push((n + 1, plane, path.trim_end_matches(':').to_string()));
        }
    }
    found
}

#[test]
fn every_plane_keeps_to_its_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 40, "the source tree was not found");
    let mut broken = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (rule, planes) = forbidden(&rel);
        let text = std::fs::read_to_string(path).unwrap();
        for (line, plane, used) in uses(&text) {
            let allowed = ALLOWED
                .iter()
                .any(|(f, p)| *f == rel && (used == *p || used.starts_with(&format!("{p}::"))));
            if planes.contains(&plane.as_str()) && !allowed {
                broken.push(format!("src/{rel}:{line}: uses crate::{used} ({rule})"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "plane rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rules_catch_a_use_across_planes() {
    let text = "use crate::serve::server::Reply;\n// crate::arr in a comment\n#[cfg(test)]\nuse crate::owner::x;";
    let found = uses(text);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1.as_str()), (1, "serve"));
    assert!(forbidden("download/transfer.rs").1.contains(&"serve"));
    assert!(forbidden("http/server.rs").1.contains(&"download"));
    assert!(forbidden("error.rs").1.contains(&"download"));
    assert!(forbidden("owner/ui.rs").1.is_empty());
}

#[test]
fn every_module_opens_with_what_it_owns() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let missing: Vec<_> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "no //! paragraph: {missing:?}");
}
