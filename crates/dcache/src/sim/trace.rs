//! Trace formats: the ARC traces (`START COUNT IGNORED SEQ` per line, each line standing for COUNT
//! consecutive pages), optionally zstd-compressed, and a plain one-key-per-line format.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, bail};

/// How a trace file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ARC paper traces: `START COUNT IGNORED SEQ`, expanded to COUNT consecutive keys.
    Arc,
    /// One key per line (any text); blank lines are skipped.
    Plain,
}

/// Reads a trace into a sequence of keys. A `.zst` file is decompressed on the fly.
///
/// # Errors
/// An unreadable file, or a line that does not fit the format (named with its number).
pub fn read(path: &Path, format: Format) -> anyhow::Result<Vec<u64>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(ruzstd::decoding::StreamingDecoder::new(file).context("not a zstd file")?)
    } else {
        Box::new(file)
    };
    parse(BufReader::new(reader), format)
}

/// Parses a trace from any reader.
///
/// # Errors
/// A line that does not fit the format.
pub fn parse(reader: impl BufRead, format: Format) -> anyhow::Result<Vec<u64>> {
    let mut keys = Vec::new();
    let mut names: HashMap<String, u64> = HashMap::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match format {
            Format::Arc => {
                let mut fields = line.split_whitespace().map(str::parse::<u64>);
                let (Some(Ok(start)), Some(Ok(count))) = (fields.next(), fields.next()) else {
                    bail!(
                        "line {}: expected `START COUNT IGNORED SEQ`, got {line:?}",
                        n + 1
                    );
                };
                keys.extend(start..start.saturating_add(count));
            }
            Format::Plain => {
                let next = names.len() as u64;
                keys.push(*names.entry(line.to_owned()).or_insert(next));
            }
        }
    }
    Ok(keys)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn arc_lines_expand_to_consecutive_pages() {
        let text = "110765 3 0 0\n\n7 1 0 1\n";
        assert_eq!(
            parse(text.as_bytes(), Format::Arc).unwrap(),
            [110765, 110766, 110767, 7]
        );
        let err = parse("12 x 0 0\n".as_bytes(), Format::Arc)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn plain_lines_name_keys_in_order_of_appearance() {
        let text = "user:1\nuser:2\n\nuser:1\n";
        assert_eq!(parse(text.as_bytes(), Format::Plain).unwrap(), [0, 1, 0]);
    }

    /// An ARC trace (`OLTP.lis.zst`, `P3.lis.zst`, …), when the traces folder is there
    /// (`shared/traces` beside the checkout, or `DCACHE_TRACES`). Without it a test skips and
    /// says so on standard error (which cargo shows even for a passing test); under CI (`CI`
    /// set), which has the folder, a missing trace fails the test instead.
    pub(crate) fn arc(name: &str) -> Option<std::path::PathBuf> {
        use std::io::Write;
        let dir = std::env::var_os("DCACHE_TRACES")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces")
            });
        let path = dir.join("arc").join(name);
        if path.exists() {
            return Some(path);
        }
        assert!(
            !std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0"),
            "CI must have the ARC traces: {} is missing",
            path.display()
        );
        // Straight to the stream: libtest captures `eprintln!` of a passing test, and a skip
        // nobody sees passes for a success.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is not there (set DCACHE_TRACES to the traces folder)",
            path.display()
        );
        None
    }

    pub(crate) fn oltp() -> Option<std::path::PathBuf> {
        arc("OLTP.lis.zst")
    }

    #[test]
    fn compressed_arc_traces_read_straight_from_zst() {
        let Some(path) = oltp() else { return };
        let keys = read(&path, Format::Arc).unwrap();
        // The traces' README: 914,145 requests.
        assert_eq!(keys.len(), 914_145);
    }
}
