//! A look at an existing file's first bytes before SQLite is allowed near it.
//!
//! SQLite would happily treat a zero-length file as a new database and report other files as
//! "not a database" only on first use; checking the header ourselves, read-only, gives a precise
//! error and guarantees a file that is not ours is never written to. Layout:
//! <https://www.sqlite.org/fileformat2.html#the_database_header>.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// The first 16 bytes of every SQLite 3 database.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Size of the database header at the start of page 1.
const HEADER_LEN: usize = 100;

/// Checks the file at `path`, if there is one.
///
/// Passes a missing or empty file (SQLite makes a new database of either) and a file whose
/// header is sane; rejects anything else without writing to it.
///
/// # Errors
/// [`StoreError::Io`] if the path cannot be read or is not a regular file,
/// [`StoreError::NotSqlite`] if the magic string is missing, [`StoreError::Corrupt`] if the
/// header is damaged or the file is shorter than the header says.
pub(crate) fn check(path: &Path) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(());
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut header)
        .map_err(io_err)?;
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_owned(),
        detail,
    };

    let magic_len = header.len().min(MAGIC.len());
    if header.get(..magic_len) != MAGIC.get(..magic_len) || header.len() < MAGIC.len() {
        return Err(StoreError::NotSqlite {
            path: path.to_owned(),
        });
    }
    if header.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "the file is {len} bytes, shorter than an SQLite header"
        )));
    }
    let Some(page_size) = page_size(&header) else {
        return Err(corrupt("the header names an invalid page size".to_owned()));
    };
    if len % page_size != 0 {
        return Err(corrupt(format!(
            "the file is {len} bytes, not a whole number of {page_size}-byte pages (truncated?)"
        )));
    }
    // The page count in the header is only trustworthy when "version-valid-for" matches the
    // change counter. While a WAL file exists a checkpoint may have been cut short after
    // writing page 1 but before the pages it counts; SQLite finishes it from the WAL, so the
    // size is only checked when there is no WAL to recover from.
    let change_counter = be_u32(&header, 24);
    let valid_for = be_u32(&header, 92);
    let pages = be_u32(&header, 28);
    if let (Some(change_counter), Some(valid_for), Some(pages)) = (change_counter, valid_for, pages)
        && change_counter == valid_for
        && pages > 0
        && !has_wal(path)
    {
        let expected = u64::from(pages) * page_size;
        if len < expected {
            return Err(corrupt(format!(
                "the file is {len} bytes but its header counts {pages} pages of \
                 {page_size} bytes ({expected} bytes): truncated"
            )));
        }
    }
    Ok(())
}

/// The page size recorded at offset 16, if it is one SQLite can write.
fn page_size(header: &[u8]) -> Option<u64> {
    let raw = u16::from_be_bytes([*header.get(16)?, *header.get(17)?]);
    // 1 stands for 65536, which does not fit in the two-byte field.
    let size = if raw == 1 { 65_536 } else { u64::from(raw) };
    (size.is_power_of_two() && (512..=65_536).contains(&size)).then_some(size)
}

/// The big-endian u32 at `offset`.
fn be_u32(header: &[u8], offset: usize) -> Option<u32> {
    let bytes: [u8; 4] = header
        .get(offset..offset.checked_add(4)?)?
        .try_into()
        .ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Whether a non-empty `-wal` file sits beside the database.
fn has_wal(path: &Path) -> bool {
    let mut wal = PathBuf::from(path).into_os_string();
    wal.push("-wal");
    fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}
