//! `jack status`: the downloads as the registry records them.
//!
//! Reads the registry only, so it works whether or not the daemon is
//! running (SQLite's WAL lets it read while the daemon writes). It never
//! creates a registry that does not exist yet.

use std::io::Write;

use crate::config::Config;
use crate::db::{Download, InvalidStub, Registry};
use crate::error::{Error, Result};

pub fn run(config: &Config, json: bool, out: &mut dyn Write) -> Result<()> {
    let path = &config.database.path;
    let (downloads, invalid) = if path.exists() {
        let reg = Registry::open(path)?;
        (reg.list()?, reg.invalid_stubs()?)
    } else {
        (Vec::new(), Vec::new())
    };
    let orphans = crate::download::reconcile::orphans(&config.downloads.incomplete_dir);
    let text = if json {
        to_json(&downloads, &invalid, &orphans)
    } else {
        let mut t = to_table(&downloads);
        for i in &invalid {
            t.push_str(&format!(
                "invalid stub {} ({}): {}\n",
                i.stub_name, i.at, i.reason
            ));
        }
        for o in &orphans {
            t.push_str(&format!(
                "orphaned .part (no download owns it): {}\n",
                o.display()
            ));
        }
        t
    };
    out.write_all(text.as_bytes())
        .map_err(|e| Error::io("cannot write the status", e))
}

fn to_json(
    downloads: &[Download],
    invalid: &[InvalidStub],
    orphans: &[std::path::PathBuf],
) -> String {
    let rows: Vec<serde_json::Value> = downloads
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "status": d.status.as_str(),
                "title": d.title,
                "file_name": d.file_name,
                "peer": d.peer,
                "item_id": d.item_id,
                "info_hash": d.info_hash,
                "stub_name": d.stub_name,
                "expected_bytes": d.expected_bytes,
                "downloaded_bytes": d.downloaded_bytes,
                "progress": progress(d),
                "attempts": d.attempts,
                "restarts": d.restarts,
                "error": d.error,
                "part_path": d.part_path,
                "dest_path": d.dest_path,
                "created_at": d.created_at,
                "updated_at": d.updated_at,
                "completed_at": d.completed_at,
            })
        })
        .collect();
    let invalid: Vec<serde_json::Value> = invalid
        .iter()
        .map(|i| serde_json::json!({"stub_name": i.stub_name, "reason": i.reason, "at": i.at}))
        .collect();
    let all = serde_json::json!({ "downloads": rows, "invalid_stubs": invalid, "orphaned_parts": orphans });
    format!("{all}\n")
}

fn to_table(downloads: &[Download]) -> String {
    if downloads.is_empty() {
        return "no downloads\n".to_string();
    }
    let mut s = format!(
        "{:>5}  {:<11}  {:>6}  {:>10}  {:<12}  {}\n",
        "ID", "STATUS", "DONE", "SIZE", "PEER", "TITLE"
    );
    for d in downloads {
        s.push_str(&format!(
            "{:>5}  {:<11}  {:>5.1}%  {:>10}  {:<12}  {}",
            d.id,
            d.status.as_str(),
            progress(d) * 100.0,
            human_bytes(d.expected_bytes),
            d.peer,
            d.title
        ));
        if let Some(err) = &d.error {
            s.push_str(&format!("  [{err}]"));
        }
        s.push('\n');
    }
    s
}

/// Durable progress in 0..=1.
fn progress(d: &Download) -> f64 {
    if d.expected_bytes == 0 {
        return if d.status == crate::db::Status::Completed {
            1.0
        } else {
            0.0
        };
    }
    d.downloaded_bytes as f64 / d.expected_bytes as f64
}

/// `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
