//! `jack scan`: the library scan the node runs at start-up, in the
//! foreground, with its progress. What friends will see (items per
//! library), what was skipped, how long it takes, before the node runs.
//!
//! Progress goes to stderr: a line as each library starts, then, on a
//! terminal, one line rewritten in place (folders read, items found) and,
//! elsewhere (a log, a pipe), that line every few seconds. The summary
//! table goes to stdout.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::config::{Config, LibrarySource};
use crate::error::{Error, Result};
use crate::serve::catalogue::{Catalogue, ScanStats};

/// How often the progress line is refreshed on a terminal, and written
/// again elsewhere.
const TERMINAL_TICK: Duration = Duration::from_millis(200);
const PLAIN_TICK: Duration = Duration::from_secs(2);

pub fn run(config: &Config, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    if config.libraries.is_empty() {
        return Err(Error::Usage(format!(
            "no [[library]] in {}: nothing to scan",
            config.file.display()
        )));
    }
    let catalogue = Catalogue::new(&config.libraries, config.server.max_catalogue_items);
    let terminal = std::io::stderr().is_terminal();
    let tick = if terminal { TERMINAL_TICK } else { PLAIN_TICK };
    let stats = std::thread::scope(|s| -> std::io::Result<ScanStats> {
        let scan = s.spawn(|| catalogue.rescan());
        let (mut announced, mut last_line) = (0, Instant::now());
        loop {
            let done = scan.is_finished();
            let (library, folders, items) = catalogue.progress().get();
            // Every library gets its line, even one scanned between two looks.
            let upto = if done {
                config.libraries.len()
            } else {
                library.saturating_add(1)
            };
            while announced < upto.min(config.libraries.len()) {
                if terminal && announced > 0 {
                    write!(err, "\r\x1b[K")?;
                }
                let l = &config.libraries[announced];
                let source = match &l.source {
                    LibrarySource::Directory => format!("folder {}", l.path.display()),
                    LibrarySource::Arr(arr) => format!("{} at {}", arr.kind.as_str(), arr.url),
                };
                writeln!(err, "scanning {} ({source})", l.name)?;
                (announced, last_line) = (announced + 1, Instant::now());
            }
            if done {
                break;
            }
            if announced == library.saturating_add(1) && folders > 0 && last_line.elapsed() >= tick
            {
                if terminal {
                    write!(err, "\r\x1b[K  {folders} folders, {items} items")?;
                } else {
                    writeln!(err, "  {folders} folders, {items} items so far")?;
                }
                last_line = Instant::now();
            }
            err.flush()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        if terminal {
            write!(err, "\r\x1b[K")?;
        }
        Ok(scan.join().expect("the scan thread does not panic"))
    });
    let stats = stats.map_err(|e| Error::io("cannot write to stderr", e))?;
    summary(out, &stats, config.server.max_catalogue_items)
        .map_err(|e| Error::io("cannot write to stdout", e))?;
    let failed: Vec<&str> = stats
        .libraries
        .iter()
        .filter(|l| l.errors > 0 || l.unavailable > 0)
        .map(|l| l.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Runtime(format!(
            "{} of {} libraries could not be read in full: {} (see the warnings above)",
            failed.len(),
            stats.libraries.len(),
            failed.join(", ")
        )))
    }
}

fn summary(out: &mut dyn Write, stats: &ScanStats, limit: usize) -> std::io::Result<()> {
    let width = stats
        .libraries
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0)
        .max("library".len());
    writeln!(
        out,
        "{:width$}  {:>8}  {:>8}  {:>8}  {:>6}  {:>9}",
        "library", "items", "folders", "skipped", "errors", "time"
    )?;
    for l in &stats.libraries {
        let errors = if l.unavailable > 0 {
            "down".to_string()
        } else {
            l.errors.to_string()
        };
        writeln!(
            out,
            "{:width$}  {:>8}  {:>8}  {:>8}  {:>6}  {:>6} ms",
            l.name,
            l.items,
            l.folders,
            l.skipped,
            errors,
            l.elapsed.as_millis()
        )?;
    }
    writeln!(
        out,
        "{} items in {} ms",
        stats.items,
        stats.elapsed.as_millis()
    )?;
    if stats.over_limit > 0 {
        writeln!(
            out,
            "{} video files left out: server.max_catalogue_items is {limit}",
            stats.over_limit
        )?;
    }
    Ok(())
}
