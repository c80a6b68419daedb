//! Golden-file checks for Dawn's encodings, shared by the crates' `tests/golden.rs`.
//!
//! A golden file is `tests/golden/<name>.hex` in the crate under test: a `# description` line,
//! then the encoding in lowercase hex, 32 bytes per line. A test compares what the code encodes
//! today with the file, so a format never changes by accident; after a deliberate change,
//! `DAWN_BLESS=1 cargo test -p <crate> --test golden` rewrites the files to be committed.
//!
//! This crate is a dev-dependency only and sits outside the layers: it knows bytes and files,
//! nothing of Dawn's types.
//!
//! ```no_run
//! let failure = dawn_golden::check(env!("CARGO_MANIFEST_DIR"), "ping", "Message::Ping", &[1, 0, 2]);
//! assert!(failure.is_none(), "{}", failure.unwrap_or_default());
//! ```

use std::io;
use std::path::{Path, PathBuf};

/// Whether golden files are being regenerated (`DAWN_BLESS=1`).
#[must_use]
pub fn bless() -> bool {
    std::env::var_os("DAWN_BLESS").is_some_and(|v| v == "1")
}

/// The path of golden file `file_name` (with its extension) of the crate at `manifest_dir`.
#[must_use]
pub fn path(manifest_dir: &str, file_name: &str) -> PathBuf {
    Path::new(manifest_dir).join("tests/golden").join(file_name)
}

/// Formats `bytes` as lowercase hex, 32 bytes (64 digits) per line.
#[must_use]
pub fn hex_lines(bytes: &[u8]) -> String {
    let encoded = hex::encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 64 + 1);
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out
}

/// Decodes a golden file's text: `#` lines are comments, whitespace is ignored.
///
/// # Errors
/// If what remains is not valid hex.
pub fn parse(text: &str) -> Result<Vec<u8>, hex::FromHexError> {
    let digits: String = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(digits)
}

/// Reads and decodes golden file `name.hex` of the crate at `manifest_dir`.
///
/// # Errors
/// If the file cannot be read or is not valid hex.
pub fn read(manifest_dir: &str, name: &str) -> io::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path(manifest_dir, &format!("{name}.hex")))?;
    parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Compares `bytes` with golden file `name.hex` of the crate at `manifest_dir`, or rewrites
/// the file under `DAWN_BLESS=1`. Returns a description of the mismatch, if any, so a test can
/// report every changed encoding at once.
#[must_use]
pub fn check(manifest_dir: &str, name: &str, description: &str, bytes: &[u8]) -> Option<String> {
    let path = path(manifest_dir, &format!("{name}.hex"));
    if bless() {
        let text = format!("# {description}\n{}", hex_lines(bytes));
        return std::fs::write(&path, text)
            .err()
            .map(|e| format!("{name}: cannot write {}: {e}", path.display()));
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => return Some(format!("{name}: {}: {e}", path.display())),
    };
    match parse(&text) {
        Ok(want) if want == bytes => None,
        Ok(want) => Some(format!(
            "{name}: encoding changed\n  golden:  {}\n  current: {}",
            hex::encode(&want),
            hex::encode(bytes)
        )),
        Err(e) => Some(format!("{name}: {} is not hex: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_lines_round_trip_through_parse() {
        let bytes: Vec<u8> = (0..=99).collect();
        let text = format!("# a comment\n{}", hex_lines(&bytes));
        assert_eq!(text.lines().nth(1).map(str::len), Some(64));
        assert_eq!(parse(&text).unwrap(), bytes);
        assert!(parse("zz").is_err());
    }

    #[test]
    fn check_reports_missing_and_changed_files() {
        let dir = std::env::temp_dir().join(format!("dawn-golden-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tests/golden")).unwrap();
        let manifest = dir.to_str().unwrap();
        assert!(check(manifest, "absent", "", b"x").is_some());
        std::fs::write(path(manifest, "ab.hex"), "# ab\n6162\n").unwrap();
        assert_eq!(check(manifest, "ab", "", b"ab"), None);
        let changed = check(manifest, "ab", "", b"ac").unwrap();
        assert!(changed.contains("encoding changed"), "{changed}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
