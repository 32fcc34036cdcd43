//! `journal.jsonl` on disk: reading it back, and appending records durably.
//!
//! A record counts once its line, newline included, is written and `fsync`ed; only then is the
//! caller told it is done. A crash can therefore leave at most one partial line at the end (a
//! "torn" line). Reading drops it with a warning and keeps its bytes in `journal.dropped` for
//! inspection; it is never taken as data, even when its JSON happens to be complete, because
//! nobody was told it was saved. A failed append cuts the file back to its last good length, so
//! a disk-full or read-only error leaves the journal exactly as it was.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::record::{Record, RecordParseError};

pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Where dropped torn lines are kept, for the curious.
pub const DROPPED_FILE: &str = "journal.dropped";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}:{line}: damaged record in the middle of the journal ({message}); seedforge will \
         not guess what it meant: fix or remove that line by hand"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: {source}; upgrade seedforge to open this workspace")]
    Newer {
        path: PathBuf,
        line: usize,
        #[source]
        source: RecordParseError,
    },
}

/// A partial last line that was not taken as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    pub line: usize,
    pub bytes: Vec<u8>,
    /// Whether the line lacked its newline (an interrupted write) or held no valid record.
    pub unterminated: bool,
}

/// A journal read from disk.
#[derive(Debug)]
pub struct ReadJournal {
    /// Each record with its 1-based line number.
    pub records: Vec<(usize, Record)>,
    /// Length in bytes of the part made of whole, valid records.
    pub valid_len: u64,
    pub torn: Option<TornLine>,
}

/// Reads `path` (a missing file is an empty journal). Only the first `limit` bytes count when a
/// limit is given: the writer's own idea of its good length after a failed append.
pub fn read(path: &Path, limit: Option<u64>) -> Result<ReadJournal, JournalError> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(JournalError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if let Some(limit) = limit {
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<ReadJournal, JournalError> {
    let complete_end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let tail = &bytes[complete_end..];
    let lines: Vec<&[u8]> = if complete_end == 0 {
        Vec::new()
    } else {
        bytes[..complete_end - 1].split(|&b| b == b'\n').collect()
    };
    let mut records = Vec::with_capacity(lines.len());
    let mut valid_len = 0u64;
    let mut torn = None;
    for (i, line) in lines.iter().enumerate() {
        let line_no = i + 1;
        let is_last = i + 1 == lines.len();
        if line.iter().all(u8::is_ascii_whitespace) {
            valid_len += line.len() as u64 + 1;
            continue;
        }
        match Record::from_line(line) {
            Ok(rec) => {
                records.push((line_no, rec));
                valid_len += line.len() as u64 + 1;
            }
            Err(source @ RecordParseError::NewerVersion { .. }) => {
                return Err(JournalError::Newer {
                    path: path.to_path_buf(),
                    line: line_no,
                    source,
                });
            }
            // A damaged final line (a crash of the machine rather than of the process can leave
            // garbage or zeros there) is treated like a torn one: nobody was told it was saved.
            Err(RecordParseError::Invalid(_)) if is_last && tail.is_empty() => {
                torn = Some(TornLine {
                    line: line_no,
                    bytes: line.to_vec(),
                    unterminated: false,
                });
            }
            Err(RecordParseError::Invalid(message)) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    message,
                });
            }
        }
    }
    if !tail.is_empty() {
        torn = Some(TornLine {
            line: lines.len() + 1,
            bytes: tail.to_vec(),
            unterminated: true,
        });
    }
    Ok(ReadJournal {
        records,
        valid_len,
        torn,
    })
}

/// Appends records to the journal; holds the file open for the workspace's lifetime.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    /// Length of the file made of whole, acknowledged records.
    len: u64,
    /// A failed append could not be cut back; do it before writing anything else.
    needs_cut: bool,
}

impl JournalWriter {
    /// Opens the journal for appending, cutting it to `valid_len` (dropping a torn tail).
    pub fn open(path: &Path, valid_len: u64) -> io::Result<JournalWriter> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_data()?;
        }
        Ok(JournalWriter {
            file,
            path: path.to_path_buf(),
            len: valid_len,
            needs_cut: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the acknowledged part of the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes whole lines and makes them durable. On error the file is cut back to what it was
    /// (or will be before the next write, if even that fails now).
    pub fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.needs_cut {
            self.cut()?;
        }
        let written = self
            .file
            .write_all(lines)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                if self.cut().is_err() {
                    self.needs_cut = true;
                }
                Err(e)
            }
        }
    }

    fn cut(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_data()?;
        self.needs_cut = false;
        Ok(())
    }
}

/// Keeps a dropped torn line's bytes beside the journal. Best effort: the caller warns either way.
pub fn save_dropped(dir: &Path, torn: &TornLine) -> Option<PathBuf> {
    let path = dir.join(DROPPED_FILE);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .ok()?;
    f.write_all(&torn.bytes).ok()?;
    f.write_all(b"\n").ok()?;
    f.sync_data().ok()?;
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::record::RecordBody;

    fn line(seq: u64) -> Vec<u8> {
        Record::new(seq, RecordBody::Undo {}).to_line()
    }

    #[test]
    fn unterminated_last_line_is_torn_even_if_its_json_is_complete() {
        let mut bytes = line(1);
        let second = line(2);
        bytes.extend_from_slice(&second[..second.len() - 1]);
        let j = parse(Path::new("j"), &bytes).unwrap();
        assert_eq!(j.records.len(), 1);
        assert_eq!(j.valid_len, line(1).len() as u64);
        let torn = j.torn.unwrap();
        assert_eq!((torn.line, torn.unterminated), (2, true));
    }

    #[test]
    fn garbage_last_line_is_dropped_but_garbage_in_the_middle_is_an_error() {
        let mut bytes = line(1);
        bytes.extend_from_slice(b"\0\0\0\0\n");
        let j = parse(Path::new("j"), &bytes).unwrap();
        assert_eq!(j.records.len(), 1);
        assert!(!j.torn.unwrap().unterminated);

        let mut bytes = line(1);
        bytes.extend_from_slice(b"{\"v\":1,\"se\n");
        bytes.extend_from_slice(&line(3));
        let err = parse(Path::new("/w/journal.jsonl"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/w/journal.jsonl:2: damaged record"),
            "{err}"
        );
    }

    #[test]
    fn newer_format_is_an_error_naming_the_line_even_at_the_end() {
        let mut bytes = line(1);
        bytes.extend_from_slice(b"{\"v\":9,\"seq\":2,\"type\":\"undo\"}\n");
        let err = parse(Path::new("j"), &bytes).unwrap_err();
        assert!(matches!(err, JournalError::Newer { line: 2, .. }), "{err}");
    }

    #[test]
    fn blank_lines_and_empty_files_are_fine() {
        let j = parse(Path::new("j"), b"").unwrap();
        assert!(j.records.is_empty() && j.torn.is_none());
        let mut bytes = line(1);
        bytes.extend_from_slice(b"\n");
        let j = parse(Path::new("j"), &bytes).unwrap();
        assert_eq!(j.records.len(), 1);
        assert_eq!(j.valid_len, bytes.len() as u64);
    }

    #[test]
    fn writer_cuts_a_torn_tail_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(JOURNAL_FILE);
        let mut bytes = line(1);
        bytes.extend_from_slice(b"{\"v\":1,\"seq\":2,\"ty");
        std::fs::write(&p, &bytes).unwrap();
        let j = read(&p, None).unwrap();
        let mut w = JournalWriter::open(&p, j.valid_len).unwrap();
        w.append(&line(2)).unwrap();
        let j = read(&p, None).unwrap();
        assert_eq!(
            j.records.iter().map(|(_, r)| r.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(j.torn.is_none());
    }
}
