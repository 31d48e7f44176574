//! Creating and finishing files, and the wording of file-system errors. Inside the sandbox a
//! missing grant shows up as "permission denied" (a read-only grant), or as a path no preopened
//! directory matches; both get the same advice: the exact permission to add.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use quarry_sdk::{Error, Result};

use crate::path::grant_for;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// A new, empty file (an existing one is truncated).
    Create,
    /// Rows are added after what an earlier flush of this sync finished.
    Append,
}

/// Opens `path` for writing, creating its parent directories.
pub fn open(path: &Path, how: Open) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| create_error(path, &e))?;
    }
    let mut options = OpenOptions::new();
    match how {
        Open::Create => options.write(true).create(true).truncate(true),
        Open::Append => options.append(true).create(true),
    };
    options.open(path).map_err(|e| create_error(path, &e))
}

/// Makes a finished file durable: its data, and (best effort) its directory entry.
pub fn sync(file: &File, path: &Path, created: bool) -> Result<()> {
    file.sync_all().map_err(|e| write_error(path, e))?;
    if created && let Some(dir) = path.parent() {
        // A new file's name lives in its directory. Not every platform can open a directory as a
        // file (Windows cannot); the data is durable either way.
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| refused("directory ", dir, grant_for(&dir.join("_")), &e))
}

/// The error for a file or directory that could not be created.
pub fn create_error(path: &Path, e: &io::Error) -> Error {
    refused("", path, grant_for(path), e)
}

fn refused(what: &str, path: &Path, grant: String, e: &io::Error) -> Error {
    if not_permitted(e) {
        return Error::invalid_spec(format!(
            "cannot create {what}{}: not permitted; grant the directory in the destination's permissions, \
             e.g. permissions: {{ files: {{ \"{grant}\": write }} }}",
            path.display(),
        ));
    }
    Error::internal(format!(
        "cannot create {what}{}: {e}; check that the directory exists or can be created and is writable",
        path.display()
    ))
}

/// The error for a failed write to (or finish of) an open file.
pub fn write_error(path: &Path, e: impl Display) -> Error {
    Error::internal(format!(
        "cannot write {}: {e}; check that the disk has space and that nothing else changed or removed the file",
        path.display()
    ))
}

fn not_permitted(e: &io::Error) -> bool {
    // wasi-libc's "not capable" errno: the descriptor lacks the rights the operation needs.
    #[cfg(target_os = "wasi")]
    const NOT_CAPABLE: Option<i32> = Some(76);
    #[cfg(not(target_os = "wasi"))]
    const NOT_CAPABLE: Option<i32> = None;
    matches!(e.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
        || (NOT_CAPABLE.is_some() && e.raw_os_error() == NOT_CAPABLE)
        // Rust's WASI `std` reports a path outside every preopened directory with this text
        // (its error kind is not nameable on stable).
        || e.to_string().contains("pre-opened")
        // In the sandbox a directory cannot be missing where the plugin may create it: a path
        // that is not found is one outside the directories granted (`..`, another root).
        || (cfg!(target_os = "wasi") && e.kind() == io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_create_says_what_to_grant() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let err = create_error(Path::new("out/x.csv"), &denied);
        assert_eq!(err.kind, quarry_sdk::ErrorKind::InvalidSpec);
        assert_eq!(
            err.message,
            "cannot create out/x.csv: not permitted; grant the directory in the destination's \
             permissions, e.g. permissions: { files: { \"./out\": write } }"
        );
        let outside = io::Error::other(
            "failed to find a pre-opened file descriptor through which \"data/t/x.csv\" could be opened",
        );
        let err = create_error(Path::new("data/t/x.csv"), &outside);
        assert!(
            err.message
                .ends_with("permissions: { files: { \"./data\": write } }"),
            "{err}"
        );
    }

    #[test]
    fn other_failures_name_the_file_and_the_remedy() {
        let full = io::Error::other("no space left on device");
        let err = create_error(Path::new("out/x.csv"), &full);
        assert_eq!(err.kind, quarry_sdk::ErrorKind::Internal);
        assert_eq!(
            err.message,
            "cannot create out/x.csv: no space left on device; check that the directory exists or \
             can be created and is writable"
        );
        assert!(
            write_error(Path::new("out/x.csv"), full)
                .message
                .starts_with("cannot write out/x.csv: ")
        );
    }

    #[test]
    fn open_creates_parents_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        io::Write::write_all(&mut open(&path, Open::Create).unwrap(), b"one\n").unwrap();
        io::Write::write_all(&mut open(&path, Open::Append).unwrap(), b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        io::Write::write_all(&mut open(&path, Open::Create).unwrap(), b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
