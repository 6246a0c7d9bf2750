//! A small logger on the `log` facade: one line per event on stderr, as
//! text (`ts LEVEL target: message`) or JSON lines.
//!
//! jack's own messages carry `key=value` fields in the message. Other crates
//! are shown only at `warn` and above unless the level is `trace`. Nothing
//! may log a key: callers log a key's owner, never its value.

use std::io::Write;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::clock::rfc3339_millis;
use crate::config::LogFormat;

struct Logger {
    level: LevelFilter,
    format: LogFormat,
}

impl Log for Logger {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.level() <= self.level
            && (meta.target().starts_with("jack")
                || meta.level() <= Level::Warn
                || self.level == LevelFilter::Trace)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(self.format, SystemTime::now(), record);
        // One write per line so concurrent threads never interleave a line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn format_line(format: LogFormat, at: SystemTime, record: &Record<'_>) -> String {
    let ts = rfc3339_millis(at);
    match format {
        LogFormat::Text => format!(
            "{ts} {:<5} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        ),
        LogFormat::Json => {
            let obj = serde_json::json!({
                "ts": ts,
                "level": record.level().as_str().to_ascii_lowercase(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            format!("{obj}\n")
        }
    }
}

/// Installs the logger. Only the first call in a process takes effect.
pub fn init(level: LevelFilter, format: LogFormat) {
    if log::set_boxed_logger(Box::new(Logger { level, format })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn text_and_json_lines() {
        let at = UNIX_EPOCH + Duration::from_millis(1_767_323_045_250);
        let args = format_args!("download started id={} offset={}", 7, 1024);
        let record = Record::builder()
            .args(args)
            .level(Level::Info)
            .target("jack::download")
            .build();
        assert_eq!(
            format_line(LogFormat::Text, at, &record),
            "2026-01-02T03:04:05.250Z INFO  jack::download: download started id=7 offset=1024\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&format_line(LogFormat::Json, at, &record)).unwrap();
        assert_eq!(json["level"], "info");
        assert_eq!(json["msg"], "download started id=7 offset=1024");
        assert_eq!(json["ts"], "2026-01-02T03:04:05.250Z");
    }
}
