//! `quarry.lock`: for every OCI plugin reference of the specs beside it (registry path and the
//! `version:` as written), the manifest and component digests it resolved to, the component's
//! size and what its signature check found. Runs use the locked digest even when the tag has
//! moved since; `quarry plugin update` re-resolves.
//!
//! The file is JSON (sorted, one entry per reference, stable across runs), written through a
//! temporary file and a rename.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The lock file's format version.
const FORMAT: u32 = 1;

/// What a lock entry records about the signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SignatureState {
    /// No signature was required.
    NotRequired,
    /// Signed by the key with this fingerprint.
    Verified {
        /// The key's fingerprint.
        key: String,
    },
}

/// One locked plugin reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPlugin {
    /// `host/repository`, as the spec's `path:` writes it.
    pub path: String,
    /// The spec's `version:` as written (`""` when absent).
    pub version: String,
    /// The tag it resolved through (absent for a digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest's digest: what runs use.
    pub manifest: Digest,
    /// The component layer's digest.
    pub component: Digest,
    /// The component's size in bytes.
    pub size: u64,
    /// The signature check.
    pub signature: SignatureState,
}

/// The lock file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// The format version.
    pub version: u32,
    /// The entries, sorted by path and version.
    #[serde(default)]
    pub plugins: Vec<LockedPlugin>,
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile {
            version: FORMAT,
            plugins: Vec::new(),
        }
    }
}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Unreadable or unwritable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a lock file this quarry reads.
    #[error(
        "{path}:{line}:{column}: {message}; fix the file, or delete it and run `quarry plugin install` to write it again"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl LockFile {
    /// Reads the lock at `path`; an absent file is an empty lock.
    pub fn load(path: &Path) -> Result<Self, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockFile::default()),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.into(),
                    source,
                });
            }
        };
        let lock: LockFile = serde_json::from_str(&text).map_err(|e| LockError::Invalid {
            path: path.into(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if let Some(bad) = lock
            .plugins
            .iter()
            .find(|p| p.tag.as_deref().is_some_and(|t| !crate::oci::is_tag(t)))
        {
            return Err(LockError::Invalid {
                path: path.into(),
                line: 1,
                column: 1,
                message: format!(
                    "the entry for `{}` has tag {:?}, which is not an OCI tag",
                    bad.path,
                    bad.tag.as_deref().unwrap_or_default()
                ),
            });
        }
        if lock.version != FORMAT {
            return Err(LockError::Invalid {
                path: path.into(),
                line: 1,
                column: 1,
                message: format!(
                    "format version {} (this quarry writes version {FORMAT})",
                    lock.version
                ),
            });
        }
        Ok(lock)
    }

    /// Writes the lock to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: path.into(),
            source,
        };
        let mut sorted = self.clone();
        sorted
            .plugins
            .sort_by(|a, b| (&a.path, &a.version).cmp(&(&b.path, &b.version)));
        let mut text = serde_json::to_string_pretty(&sorted).map_err(|e| io(e.into()))?;
        text.push('\n');
        let tmp = path.with_extension(format!("lock.tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The entry for `path` at `version` (as written).
    pub fn get(&self, path: &str, version: &str) -> Option<&LockedPlugin> {
        self.plugins
            .iter()
            .find(|p| p.path == path && p.version == version)
    }

    /// Adds or replaces the entry for its reference; returns the entry it replaced, if any.
    pub fn put(&mut self, entry: LockedPlugin) -> Option<LockedPlugin> {
        match self
            .plugins
            .iter_mut()
            .find(|p| p.path == entry.path && p.version == entry.version)
        {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                self.plugins.push(entry);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, manifest: &[u8]) -> LockedPlugin {
        LockedPlugin {
            path: "127.0.0.1:5000/plugins/x".into(),
            version: version.into(),
            tag: Some(version.into()),
            manifest: Digest::of(manifest),
            component: Digest::of(b"c"),
            size: 1,
            signature: SignatureState::NotRequired,
        }
    }

    #[test]
    fn locks_round_trip_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.lock");
        assert_eq!(LockFile::load(&path).unwrap(), LockFile::default());
        let mut lock = LockFile::default();
        assert!(lock.put(entry("2.0.0", b"m2")).is_none());
        assert!(lock.put(entry("1.0.0", b"m1")).is_none());
        assert_eq!(lock.put(entry("1.0.0", b"m3")), Some(entry("1.0.0", b"m1")));
        lock.save(&path).unwrap();
        let read = LockFile::load(&path).unwrap();
        assert_eq!(read.plugins[0], entry("1.0.0", b"m3"));
        assert_eq!(
            read.get("127.0.0.1:5000/plugins/x", "2.0.0"),
            Some(&entry("2.0.0", b"m2"))
        );
    }

    #[test]
    fn a_lock_cannot_name_files_through_its_tags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.lock");
        let mut lock = LockFile::default();
        let mut bad = entry("1.0.0", b"m");
        bad.tag = Some("/home/u/.docker/config".into());
        lock.put(bad);
        lock.save(&path).unwrap();
        let err = LockFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("which is not an OCI tag"), "{err}");
    }

    #[test]
    fn a_damaged_lock_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.lock");
        std::fs::write(
            &path,
            "{\n  \"version\": 1,\n  \"plugins\": [ {\"path\": 3} ]\n}\n",
        )
        .unwrap();
        let err = LockFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("quarry.lock:3:"), "{err}");
    }
}
