//! Build facts for `jack --version`: the git commit the binary was built
//! from (`JACK_COMMIT` when set, as a release build from an archive sets
//! it; else `git rev-parse`; else `unknown`) and the target triple.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `git <args>` prints, trimmed, when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=JACK_COMMIT");
    // A new commit moves the branch's ref, a checkout moves HEAD. In a
    // linked worktree `.git` is a file: HEAD lives in the worktree's own
    // git folder, the refs in the common one, so both are asked of git.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        let common = git(&["rev-parse", "--git-common-dir"]).map_or(dir.clone(), PathBuf::from);
        watch(&dir.join("HEAD"));
        watch(&common.join("packed-refs"));
        if let Ok(head) = std::fs::read_to_string(dir.join("HEAD"))
            && let Some(name) = head.trim().strip_prefix("ref: ")
        {
            watch(&common.join(name));
        }
    }
    let commit = std::env::var("JACK_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=JACK_COMMIT={commit}");
    println!("cargo:rustc-env=JACK_TARGET={target}");
}
