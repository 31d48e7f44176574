//! The content-addressed store of pulled artifacts, under the cache directory (`oci/`):
//!
//! - `blobs/sha256/<hex>`: manifests, configs, components and signature payloads, each named by
//!   the digest of its bytes;
//! - `refs/<registry>/<repository>/<tag>.json`: what a tag pointed to when it was pulled (for
//!   `quarry plugin list` and offline runs without a lock entry);
//! - `tmp/`: files being written.
//!
//! Every write goes to a new file in `tmp/` (same file system), is flushed, and is renamed into
//! place: two processes pulling the same blob write the same bytes and the last rename wins, so
//! no lock is needed and no reader ever sees half a file. Every read hashes the bytes again: a
//! blob that no longer matches its name is reported, removed, and never handed out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The store's root and the operations on it.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A blob whose bytes no longer hash to its name.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stored file {path} was changed on disk: its sha256 is {actual}, not {expected}; it was removed"
)]
pub struct Corrupt {
    /// The file.
    pub path: PathBuf,
    /// The digest it is stored under.
    pub expected: Digest,
    /// What its bytes hash to.
    pub actual: Digest,
}

/// Why the store could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A changed blob.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// The file system failed.
    #[error("the plugin store at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What a tag pointed to when it was pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRef {
    /// `host/repository`.
    pub repository: String,
    /// The tag, or the digest when pulled by digest.
    pub tag: String,
    /// The manifest's digest.
    pub manifest: Digest,
    /// The component's digest.
    pub component: Digest,
    /// The component's size in bytes.
    pub size: u64,
    /// When it was pulled (RFC 3339).
    pub pulled: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// The store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Writes `bytes` at `target` through a temporary file and a rename.
    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp_dir = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(self.io(&tmp_dir))?;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = tmp_dir.join(format!(
            "{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(self.io(target))
    }

    /// Stores `bytes`; returns their digest. A blob already there (and intact) is kept.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if matches!(self.get(&digest), Ok(Some(_))) {
            return Ok(digest);
        }
        self.write_atomically(&path, bytes)?;
        Ok(digest)
    }

    /// The blob's bytes, hashed again and compared with its name; `None` when it is not here.
    /// A changed blob is removed (so that it is fetched again) and reported.
    pub fn get(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let path = self.blob_path(digest);
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(self.io(&path))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            // Removed only if it is still the file read: another process may have renamed a
            // good copy into place meanwhile.
            let read = file.metadata().map(|m| m.ino()).ok();
            if read.is_some() && std::fs::metadata(&path).map(|m| m.ino()).ok() == read {
                let _ = std::fs::remove_file(&path);
            }
            return Err(Corrupt {
                path,
                expected: digest.clone(),
                actual,
            }
            .into());
        }
        Ok(Some(bytes))
    }

    /// `refs/<registry>/<repository>/<tag>.json`; `None` for anything that is not a repository
    /// and a tag (a digest is recorded as `sha256-<hex>`), so no record names a file elsewhere.
    fn ref_path(&self, repository: &str, tag: &str) -> Option<PathBuf> {
        let tag = match Digest::parse(tag) {
            Ok(digest) => format!("sha256-{}", digest.hex()),
            Err(_) if crate::oci::is_tag(tag) => tag.to_string(),
            Err(_) => return None,
        };
        crate::oci::Repository::parse(repository).ok()?;
        let mut path = self.root.join("refs");
        for part in repository.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return None;
            }
            path.push(part);
        }
        Some(path.join(format!("{tag}.json")))
    }

    /// Records what a tag (or digest) pointed to when it was pulled.
    pub fn record(&self, entry: &StoredRef) -> Result<(), StoreError> {
        let Some(path) = self.ref_path(&entry.repository, &entry.tag) else {
            return Err(StoreError::Io {
                path: self.root.join("refs"),
                source: std::io::Error::other(format!(
                    "`{}:{}` is not a repository and tag",
                    entry.repository, entry.tag
                )),
            });
        };
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| self.io(&path)(e.into()))?;
        self.write_atomically(&path, &bytes)
    }

    /// What `repository:tag` pointed to when it was last pulled.
    pub fn recorded(&self, repository: &str, tag: &str) -> Option<StoredRef> {
        let bytes = std::fs::read(self.ref_path(repository, tag)?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every recorded pull, sorted by repository and tag.
    pub fn refs(&self) -> Vec<StoredRef> {
        fn walk(dir: &Path, out: &mut Vec<StoredRef>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "json")
                    && let Ok(bytes) = std::fs::read(&path)
                    && let Ok(stored) = serde_json::from_slice(&bytes)
                {
                    out.push(stored);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join("refs"), &mut out);
        out.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
        out
    }

    fn signatures_path(&self, manifest: &Digest) -> PathBuf {
        self.root.join("signatures").join(manifest.hex())
    }

    /// Records the digest of the signature manifest found beside `manifest`.
    pub fn record_signatures(
        &self,
        manifest: &Digest,
        signatures: &Digest,
    ) -> Result<(), StoreError> {
        self.write_atomically(
            &self.signatures_path(manifest),
            signatures.to_string().as_bytes(),
        )
    }

    /// The digest of the signature manifest recorded for `manifest`.
    pub fn recorded_signatures(&self, manifest: &Digest) -> Option<Digest> {
        let text = std::fs::read_to_string(self.signatures_path(manifest)).ok()?;
        Digest::parse(text.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_on_every_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let digest = store.put(b"component").unwrap();
        assert_eq!(store.get(&digest).unwrap().unwrap(), b"component");
        assert_eq!(store.put(b"component").unwrap(), digest);
        // One byte flipped on disk: reported, removed, never returned.
        let path = store.blob_path(&digest);
        std::fs::write(&path, b"componenT").unwrap();
        let err = store.get(&digest).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!path.exists());
        assert!(store.get(&digest).unwrap().is_none());
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn concurrent_writers_of_one_blob_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let bytes = vec![7u8; 1 << 20];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| store.put(&bytes).unwrap());
            }
        });
        assert_eq!(store.get(&Digest::of(&bytes)).unwrap().unwrap(), bytes);
    }

    #[test]
    fn refs_are_recorded_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let entry = StoredRef {
            repository: "127.0.0.1:5000/plugins/x".into(),
            tag: "1.0.0".into(),
            manifest: Digest::of(b"m"),
            component: Digest::of(b"c"),
            size: 1,
            pulled: "2026-12-01T00:00:00Z".into(),
        };
        store.record(&entry).unwrap();
        assert_eq!(
            store.recorded(&entry.repository, "1.0.0"),
            Some(entry.clone())
        );
        assert_eq!(store.refs(), vec![entry]);
    }
}
