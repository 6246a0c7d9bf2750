//! Build facts for `jack --version`: the git commit the binary was built
//! from (`JACK_COMMIT` when set, as a release build from an archive sets
//! it; else `git rev-parse`; else `unknown`) and the target triple.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=JACK_COMMIT");
    // A new commit moves the branch's ref, a checkout moves HEAD.
    for git in [".git/HEAD", ".git/packed-refs"] {
        if Path::new(git).exists() {
            println!("cargo:rerun-if-changed={git}");
        }
    }
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(name) = head.trim().strip_prefix("ref: ")
        && Path::new(".git").join(name).exists()
    {
        println!("cargo:rerun-if-changed=.git/{name}");
    }
    let commit = std::env::var("JACK_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=JACK_COMMIT={commit}");
    println!("cargo:rustc-env=JACK_TARGET={target}");
}
