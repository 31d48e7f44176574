//! Compiled components on disk, so that a second run starts in milliseconds instead of
//! recompiling. The key is the component's sha256 and the engine's compatibility hash: a new
//! wasmtime or a changed engine configuration makes old entries miss instead of failing to load.
//!
//! A compiled entry is machine code that is run as it is, so it is checked before it is
//! deserialized: beside each `.cwasm` a `.sha256` file holds the digest of its bytes, and an
//! entry whose bytes no longer match (a flipped bit, a partial copy, an edit) is reported and
//! compiled again from the component, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Feeds `Hash` output into sha256, for a key that is stable across processes (unlike
/// `DefaultHasher`, whose seed and algorithm are not promised).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

impl CompileCache {
    /// A cache in `dir`, or none (always compile) when `dir` is `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    fn entry(&self, engine: &Engine, digest: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(format!("{digest}-{}.cwasm", engine_hash(engine))),
        )
    }

    /// The entry's bytes if they are still the bytes that were stored; `None` (and a warning
    /// naming the file) for an entry that is missing, unreadable or changed.
    fn verified(plugin: &str, path: &Path) -> Option<Vec<u8>> {
        let bytes = std::fs::read(path).ok()?;
        let Ok(recorded) = std::fs::read_to_string(path.with_extension("sha256")) else {
            tracing::info!(plugin, cache = %path.display(), "the compiled component in the cache has no recorded digest (an older quarry stored it); compiling the component again");
            return None;
        };
        let actual = sha256_hex(&bytes);
        if recorded.trim() == actual {
            return Some(bytes);
        }
        tracing::warn!(
            plugin,
            cache = %path.display(),
            "the compiled component in the cache has changed since it was stored (sha256 {actual}, recorded {}); it is not loaded, and the component is compiled again",
            recorded.trim()
        );
        None
    }

    /// The compiled component, and whether it had to be compiled now.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        plugin: &str,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        let entry = self.entry(engine, digest);
        let cached = entry
            .as_deref()
            .filter(|p| p.is_file())
            .and_then(|p| Some((p, Self::verified(plugin, p)?)));
        if let Some((path, bytes)) = cached {
            // SAFETY: the bytes are those `Component::serialize` of this engine's configuration
            // (the file name carries its compatibility hash) wrote, as their recorded sha256
            // shows, into a directory only this user's quarry writes.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => {
                    tracing::debug!(plugin, cache = %path.display(), "loaded compiled component from cache");
                    return Ok((component, false));
                }
                Err(e) => {
                    tracing::warn!(plugin, cache = %path.display(), "ignoring unusable cache entry: {e}")
                }
            }
        }
        let started = Instant::now();
        let component = Component::new(engine, bytes)?;
        tracing::info!(
            plugin,
            size_kib = bytes.len() / 1024,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled plugin component"
        );
        if let Some(path) = entry
            && let Err(e) = store(&path, &component.serialize()?)
        {
            tracing::warn!(plugin, cache = %path.display(), "could not cache the compiled component: {e}");
        }
        Ok((component, true))
    }
}

/// Writes the entry and then its digest, each through a temporary file and a rename, so a
/// concurrent run never reads half of either (and an entry without its digest is not loaded).
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let write = |target: &Path, contents: &[u8]| {
        let tmp = target.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, target)
    };
    write(path, bytes)?;
    write(&path.with_extension("sha256"), sha256_hex(bytes).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble of the component binary format, no sections.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_changed_entry_is_compiled_again_never_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = CompileCache::new(Some(dir.path().to_path_buf()));
        let engine = Engine::default();
        let digest = sha256_hex(EMPTY_COMPONENT);
        let load = || {
            cache
                .load_or_compile(&engine, "empty", EMPTY_COMPONENT, &digest)
                .expect("compiles")
                .1
        };
        assert!(load(), "the first load compiles");
        assert!(!load(), "the second comes from the cache");
        let entry = cache.entry(&engine, &digest).expect("an entry");
        let mut bytes = std::fs::read(&entry).expect("the entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&entry, &bytes).expect("flip a bit");
        assert!(load(), "a changed entry is compiled again");
        assert!(!load(), "and stored afresh");
        std::fs::remove_file(entry.with_extension("sha256")).expect("drop the digest");
        assert!(load(), "an entry without its digest is compiled again");
    }
}
