//! Helpers for the end-to-end tests: a jack node in a temp dir running the
//! real binary, and a minimal raw HTTP client.

#![allow(dead_code)]

pub mod bed;
pub mod fake_arr;
pub mod fake_peer;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const JACK: &str = env!("CARGO_BIN_EXE_jack");

/// The crash points (`JACK_CRASH_AT`) of a checkpoint and of the link
/// hand-off, in the order a download reaches them.
pub const CRASH_POINTS: [&str; 7] = [
    "checkpoint:after_write",
    "checkpoint:after_sync",
    "checkpoint:after_commit",
    "finalize:after_fsync",
    "finalize:after_link",
    "finalize:after_rename",
    "finalize:after_dir_fsync",
];

/// The command line that starts the jack binary: `JACK` itself, or, when
/// `JACK_TEST_RUNNER` is set (`make test-arm`: `qemu-aarch64`, or
/// `qemu-arm -L /usr/arm-linux-gnueabihf`), that emulator with `JACK` after
/// it, since an ARM binary cannot be exec'd directly where binfmt_misc is
/// not mounted.
pub fn jack_argv() -> Vec<String> {
    let mut argv: Vec<String> = std::env::var("JACK_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    argv.push(JACK.to_owned());
    argv
}

/// A `Command` for the jack binary (through the runner when there is one).
pub fn jack_command() -> Command {
    let argv = jack_argv();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

/// True when the binary under test runs under an emulator (`make test-arm`):
/// a few figures (memory of the process, tight latencies) measure the
/// emulator there, not jack.
pub fn emulated() -> bool {
    std::env::var_os("JACK_TEST_RUNNER").is_some_and(|r| !r.is_empty())
}

/// How long an answer that waits on nothing may take: 50 ms natively,
/// 200 ms under qemu (where every answer costs tens of milliseconds). A
/// thread held by someone else's work shows as hundreds of milliseconds or
/// whole seconds, so both bounds still tell the two apart.
pub fn at_once() -> std::time::Duration {
    std::time::Duration::from_millis(if emulated() { 200 } else { 50 })
}

/// A temp dir holding a `jack.toml`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// A site whose config is `base` plus `extra` TOML.
    pub fn new(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\napi_key = \"test-key\"\nhandler_threads = 4\n{extra}"
        );
        std::fs::write(dir.path().join("jack.toml"), text).unwrap();
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("jack.toml")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = jack_command();
        cmd.current_dir(self.path())
            .env_remove("JACK_CONFIG")
            .env_remove("JACK_LOG")
            .args(args);
        cmd
    }

    /// Runs `jack <args> --config <this site's config>` to its end.
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        let config = self.config();
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        self.command(&all).output().unwrap()
    }

    /// Makes the site listen on a free port named in its config (so the
    /// CLI, `jack status` or `jack pause`, finds its running node).
    pub fn listen_on_a_free_port(&self) -> SocketAddr {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = std::fs::read_to_string(self.config()).unwrap();
        assert!(config.contains("listen = \"127.0.0.1:0\""));
        let config = config.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
        std::fs::write(self.config(), config).unwrap();
        addr
    }

    /// Starts `jack run` and waits until it logs its listening address.
    pub fn start(&self) -> Node {
        let cmd = self.command(&["--config", self.config().to_str().unwrap(), "run"]);
        Node::spawn(cmd)
    }
}

/// A running jack process and everything it wrote to stderr.
pub struct Node {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    pub fn spawn(cmd: Command) -> Node {
        Node::try_spawn(cmd).unwrap_or_else(|log| panic!("jack did not start; stderr:\n{log}"))
    }

    /// [`Node::spawn`] that returns what the process wrote to stderr when
    /// it ends (or is silent for 20 s) before it listens, a crash point
    /// reached at start-up for instance.
    pub fn try_spawn(mut cmd: Command) -> Result<Node, String> {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            // Read to the end whatever the bytes (a line that is not UTF-8
            // must not stop the reader: the process would then block on a
            // full pipe).
            for line in BufReader::new(stderr).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).into_owned();
                if let Some(rest) = line.split("listening addr=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().to_string();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => Ok(Node {
                child,
                addr: a.parse().unwrap(),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(log.lock().unwrap().join("\n"))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Threads of the process (from /proc).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .count()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.head, name)
    }
}

/// The value of the first header `name` in a response head (status line
/// first).
pub fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    request_with_body(addr, method, path, headers, b"")
}

/// [`request`] with a body (its `Content-Length` added when not empty).
pub fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    request_on(
        TcpStream::connect(addr).unwrap(),
        method,
        path,
        headers,
        body,
    )
}

/// [`request`] from the local address `from` (any of 127.0.0.0/8).
pub fn request_from(from: &str, addr: SocketAddr, method: &str, path: &str) -> Resp {
    request_on(connect_from(from, addr), method, path, &[], b"")
}

/// A connection to `addr` from the local address `from`: every address of
/// 127.0.0.0/8 is this host, so a test can be several clients.
pub fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&from.into()).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

/// Sends one request on `s` and reads the whole response.
pub fn request_on(
    mut s: TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let addr = s.peer_addr().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Resp { status, head, body }
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[])
}

impl Node {
    /// Waits until a stderr line contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no log line with {needle:?}; log:\n{}", self.log_text());
    }
}

/// The API key every test site uses.
pub const KEY: &str = "test-key";

/// A site with one movies library at `media/movies`, started, its first
/// catalogue scan done.
pub fn serving_site(extra: &str, files: &[(&str, &[u8])]) -> (Site, Node) {
    let site = Site::new(&format!(
        "{extra}\n[[library]]\nname = \"movies\"\npath = \"media/movies\"\ncategory = \"movies\"\n"
    ));
    std::fs::create_dir_all(site.path().join("media/movies")).unwrap();
    for (rel, bytes) in files {
        let p = site.path().join("media/movies").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let node = site.start();
    node.wait_log("catalogue scanned", Duration::from_secs(10));
    (site, node)
}

/// The id of the catalogue item whose filename is `name`.
pub fn item_id(addr: SocketAddr, name: &str) -> String {
    let r = request(addr, "GET", "/peer/search", &[("X-Api-Key", KEY)]);
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["filename"] == name)
        .unwrap_or_else(|| panic!("{name} not in {v}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Percent-encodes an item id for a URL path.
pub fn enc(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Fails with what to install when an outside tool is missing.
pub fn need_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is needed by this test: run `make test` (it installs it) or install it yourself"
    );
}

/// Polls `f` every 20 ms until it holds, failing after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `jack <args>` of a site printed (it succeeded).
pub fn cli_output(site: &Site, args: &[&str]) -> String {
    let out = site.run_cli(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `jack status --json` of a site.
pub fn status_json(site: &Site) -> serde_json::Value {
    let out = site.run_cli(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A downloading site whose peer `alice` is at `peer_addr`.
pub fn downloader(peer_addr: SocketAddr, extra: &str) -> Site {
    downloader_polling(peer_addr, 100, extra)
}

/// [`downloader`] with its watch folder polled every `scan_interval_ms`.
pub fn downloader_polling(peer_addr: SocketAddr, scan_interval_ms: u64, extra: &str) -> Site {
    Site::new(&format!(
        "[downloads]\nscan_interval_ms = {scan_interval_ms}\nretry_base_delay_ms = 10\nretry_max_delay_ms = 100\n{extra}\n[[peers]]\nname = \"alice\"\nurl = \"http://{peer_addr}\"\napi_key = \"{KEY}\"\n"
    ))
}

/// Drops a stub into a site's watch folder atomically.
pub fn drop_stub(site: &Site, name: &str, bytes: &[u8]) {
    let watch = site.path().join("data/watch");
    std::fs::create_dir_all(&watch).unwrap();
    let tmp = watch.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, watch.join(name)).unwrap();
}

/// Drops the stub of `peer`'s item `id` (`title`, `size` bytes) as `stub_name`.
pub fn drop_grab(site: &Site, stub_name: &str, peer: &str, id: &str, title: &str, size: usize) {
    let stub = jack::stub::build(peer, id, title, size as u64);
    drop_stub(site, stub_name, &stub);
}

/// A test clock: real time plus whatever a test adds with
/// [`OffsetClock::advance`] (short delays pass by themselves, long ones are
/// skipped on demand), or, when frozen, only what the test adds.
#[derive(Default)]
pub struct OffsetClock {
    offset: Mutex<Duration>,
    frozen: Option<(Instant, std::time::SystemTime)>,
}

impl OffsetClock {
    pub fn frozen() -> OffsetClock {
        OffsetClock {
            offset: Mutex::new(Duration::ZERO),
            frozen: Some((Instant::now(), std::time::SystemTime::now())),
        }
    }

    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap() += d;
    }
}

impl jack::clock::Clock for OffsetClock {
    fn now(&self) -> Instant {
        self.frozen.map_or_else(Instant::now, |f| f.0) + *self.offset.lock().unwrap()
    }
    fn wall(&self) -> std::time::SystemTime {
        self.frozen.map_or_else(std::time::SystemTime::now, |f| f.1) + *self.offset.lock().unwrap()
    }
}

impl Node {
    /// Sends `sig` (TERM or INT) and asserts the graceful contract: exit 0
    /// within 5 s. Returns how long it took.
    pub fn stop_gracefully(&mut self, sig: &str) -> Duration {
        let t = Instant::now();
        self.signal(sig);
        let status = self
            .wait_exit(Duration::from_secs(5))
            .expect("exit within 5 s");
        assert_eq!(status.code(), Some(0), "{}", self.log_text());
        t.elapsed()
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Forwards connections to `target`, the answers at most `rate` bytes a
/// second. Runs until the test process ends (its peers close first).
pub fn throttle(target: SocketAddr, rate: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}
