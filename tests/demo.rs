//! The first minute: `make demo` (scripts/run.sh --demo) starts the shipped
//! jack.toml beside the demo friend alice (contrib/demo/alice.toml), finds
//! her release through Torznab, grabs it through the watch folder and sees
//! it complete, printing the two curl lines the README gives. Run here on
//! copies of the shipped files, with free ports in place of 5225 and 5226.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// The search line `make demo` prints and the README gives, for `port`.
fn search_line(port: u16) -> String {
    format!("curl 'http://127.0.0.1:{port}/torznab/api?t=search&q=sintel&apikey=change-me'")
}

#[test]
fn make_demo_finds_grabs_and_downloads_a_friends_release() {
    support::need_tool("curl");
    let root = tempfile::tempdir().unwrap();
    let (ours, alices) = (support::free_port(), support::free_port());
    let ported = |text: String| {
        text.replace("127.0.0.1:5225", &format!("127.0.0.1:{ours}"))
            .replace("127.0.0.1:5226", &format!("127.0.0.1:{alices}"))
    };
    std::fs::write(root.path().join("jack.toml"), ported(read("jack.toml"))).unwrap();
    std::fs::create_dir_all(root.path().join("contrib/demo")).unwrap();
    std::fs::write(
        root.path().join("contrib/demo/alice.toml"),
        ported(read("contrib/demo/alice.toml")),
    )
    .unwrap();

    let limit = if support::emulated() { 240 } else { 60 };
    let mut cmd = Command::new(repo("scripts/run.sh"));
    cmd.args(["--demo", "--exit-when-done"])
        .env("JACK_BIN", env!("CARGO_BIN_EXE_jack"))
        .env("JACK_DEMO_ROOT", root.path())
        .env("JACK_DEMO_LIMIT", limit.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("scripts/run.sh starts");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(limit + 60) {
            let _ = child.kill();
            panic!("make demo did not end within {} s", limit + 60);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let text = reader.join().unwrap();
    assert!(status.success(), "{status}\n{text}\n{err}");

    // What the newcomer reads: the two lines to repeat it by hand.
    assert!(text.contains(&search_line(ours)), "{text}");
    let title = "Sintel.2010.1080p.WEB-DL.x264-ALICE";
    assert!(
        text.contains(&format!(
            "curl -o 'data/watch/{title}.torrent' 'http://127.0.0.1:{ours}/torznab/download/"
        )),
        "{text}"
    );
    assert!(
        text.contains("alice | "),
        "alice's log is shown, marked: {text}"
    );
    assert!(text.contains("completed"), "{text}");
    assert!(text.contains("demo: downloaded"), "{text}");

    // The downloaded file is alice's, byte for byte.
    let got = std::fs::read(root.path().join(format!("data/completed/{title}.mkv"))).unwrap();
    let served = std::fs::read(root.path().join(format!(
        "data/alice/media/movies/Sintel (2010) {{tmdb-45745}}/{title}.mkv"
    )))
    .unwrap();
    assert_eq!(got.len(), 24 << 20);
    assert!(got == served, "the downloaded file differs from alice's");

    // Both nodes stopped with the script.
    for port in [ours, alices] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "a node still listens on {port}"
        );
    }
}

/// The README names `make demo` first and gives the same two curl lines,
/// on the shipped ports; the shipped jack.toml's friend is the demo's alice.
#[test]
fn the_readme_gives_the_demo_first_with_its_curl_lines() {
    let readme = read("README.md");
    let demo = readme
        .find("make demo")
        .expect("the README names make demo");
    let run = readme.find("make run").expect("the README names make run");
    assert!(demo < run, "make demo comes first");
    assert!(readme.contains(&search_line(5225)), "the search line");
    assert!(
        readme.contains("curl -o 'data/watch/Sintel.2010.1080p.WEB-DL.x264-ALICE.torrent' "),
        "the grab line"
    );
    let config = read("jack.toml");
    let alice = read("contrib/demo/alice.toml");
    assert!(config.contains("url = \"http://127.0.0.1:5226\""));
    assert!(config.contains("api_key = \"the key alice gave you\""));
    assert!(alice.contains("listen = \"127.0.0.1:5226\""));
    assert!(alice.contains("key = \"the key alice gave you\""));
}
